"""Snapshot tests of the real app at a fixed size: main screen, conflict modal, summary.

Frames are made deterministic: a paused pool or a finished run, a frozen clock, `redact` for commit ids
and durations, and pane logs cleared (the demo agent prints temp paths and shas).
"""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

from textual.widgets import Log

from tests.test_ui_app import CONFLICTING, THREE_TASKS, make_app, statuses, write_project
from tuiorch.events import TaskStatus
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import ConflictScreen, SummaryScreen

SIZE = (120, 40)
FROZEN = 1_700_000_000.0


def freeze(app: TuiorchApp) -> None:
    app.clock = lambda: FROZEN
    app.redact = True
    # An indeterminate ProgressBar (or any animation) draws from Textual's own clock: stop them all.
    app.animation_level = "none"


async def settle(pilot, condition, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {statuses(pilot.app)} {pilot.app.screen}"
        await pilot.pause(0.05)


async def quiet_frame(pilot) -> None:  # noqa: ANN001
    app = pilot.app
    for log in app.query(Log):
        if log.id != "full-log":
            log.clear()
    app.clear_notifications()
    app.mark_dirty()
    await pilot.pause(0.3)


def test_main_screen_with_a_paused_pool(repo: Path, snap_compare) -> None:  # noqa: ANN001
    write_project(repo, dedent(THREE_TASKS).replace("## Task 3: Add gamma", "## Task 3: Add gamma\ndepends: 1"), workers=2)
    app = make_app(repo, paused=True, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await pilot.press("down", "h")  # hold task 2 so the wait reasons differ
        await quiet_frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_conflict_modal(repo: Path, snap_compare) -> None:  # noqa: ANN001
    # Task 2 thinks longer, so task 1 always merges first and task 2 is the one in conflict.
    write_project(repo, dedent(CONFLICTING).replace("## Task 2: Beta says hi\n", "## Task 2: Beta says hi\n\nsleep: 1\n"))
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        # The frame is taken once the engine has nothing left to do: task 1 merged, task 2 waits on the user.
        await settle(pilot, lambda: isinstance(app.screen, ConflictScreen)
                     and app.orch.records["1"].status is TaskStatus.MERGED and not app.orch.has_active_work())
        assert app.screen.task_id == "2"  # type: ignore[attr-defined]
        await quiet_frame(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    assert app.orch.records["2"].status is TaskStatus.CONFLICT


def test_summary_after_a_finished_run(repo: Path, snap_compare) -> None:  # noqa: ANN001
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: set(statuses(app).values()) == {"merged"})
        await quiet_frame(pilot)
        await pilot.press("s")
        await settle(pilot, lambda: isinstance(app.screen, SummaryScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
