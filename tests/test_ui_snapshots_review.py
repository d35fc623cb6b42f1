"""Snapshots of the review screens at 80×24 and 160×48: the diff (unified and side by side) and the conflict
modal on a hunk deep in a file. Frames are deterministic: the engine has nothing left to do, the clock is
frozen and run-to-run values redacted (see test_ui_snapshots)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.review_project import deep_conflict_repo
from tests.test_ui_app import make_app
from tests.test_ui_snapshots import announced, freeze, quiet_frame, settle
from tuiorch.events import TaskStatus
from tuiorch.ui.screens import ConflictScreen, DiffScreen
from tuiorch.ui.widgets import QueuePane, WorkerPane

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", ["unified", "side_by_side"])
def test_diff_screen(tmp_path: Path, snap_compare, size: tuple[int, int], layout: str) -> None:  # noqa: ANN001
    repo = deep_conflict_repo(tmp_path / "repo", merge="auto = false", second_sleep=0)
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: {r.status for r in app.orch.records.values()} == {TaskStatus.FINISHED}
                     and app.orch.running_count() == 0)
        await quiet_frame(pilot)
        app.query_one(QueuePane).select("2")
        await pilot.press("d")
        await settle(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None)
        if layout == "side_by_side":
            await pilot.press("v")
        app.clear_notifications()  # "finished; merge it when you are ready" toasts over every screen
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_conflict_modal_deep_in_a_file(tmp_path: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: app.orch.records["2"].status is TaskStatus.CONFLICT
                     and app.orch.records["1"].status is TaskStatus.MERGED and not app.orch.has_active_work())
        # The screen behind a modal is not laid out again: draw its final state before the modal opens.
        await settle(pilot, lambda: sorted(str(p.border_subtitle) for p in app.query(WorkerPane))
                     == ["conflict", "merged"] and announced(app, "conflicts with"))
        await quiet_frame(pilot)
        app.query_one(QueuePane).select("2")
        await pilot.press("c")
        await settle(pilot, lambda: isinstance(app.screen, ConflictScreen) and app.screen.current is not None)
        await pilot.press("o", "a")  # line 10 taken from master; at line 1,600 with the merge base shown
        app.clear_notifications()
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# Timing-sensitive on a loaded 2-core machine (real processes, kill -9 at chosen moments, frames drawn
# while agents run): a failure is tried again up to twice, and the report counts each rerun.
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)
