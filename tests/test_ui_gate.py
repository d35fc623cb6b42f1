"""The gate and predicted conflicts as the user sees them: queue rows and worker panes on the real engine."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from textual.widgets import Label

from tests.test_ui_app import SIZE, make_app, open_conflict_modal, quit_app, wait_for, write_project
from tuiorch.events import TaskStatus
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.widgets import QueuePane, WorkerPane

GATED = """\
    ## Task 1: Good change
    ```write good.txt
    good
    ```

    ## Task 2: Breaks the build
    ```write BAD
    broken
    ```
"""

README_CLASH = """\
    ## Task 1: Hello README
    ```write README.md
    hello from one
    ```

    ## Task 2: Goodbye README
    sleep: 0.3
    linger: 4
    ```write README.md
    goodbye from two
    ```
"""


def gate_config(sentinel: Path) -> str:
    """A [merge] check that takes a moment and fails while BAD is in the merge result and `sentinel` exists."""
    code = (
        "import os, sys, time; time.sleep(0.8); "
        f"sys.exit(1 if os.path.exists('BAD') and os.path.exists({str(sentinel)!r}) else 0)"
    )
    return f"\n[merge]\ncheck = {json.dumps(shlex.join([sys.executable, '-c', code]))}\n"


def queue_row(app: TuiorchApp, task_id: str) -> tuple[str, str]:
    """(state, note) as drawn in the queue table's cells for `task_id`."""
    line = app.query_one(QueuePane).line_of(task_id)
    assert line is not None, f"task {task_id} has no row in the queue table"
    return line.state, line.reason


def pane_of(app: TuiorchApp, task_id: str) -> WorkerPane | None:
    return next((pane for pane in app.query(WorkerPane) if pane.task_id == task_id), None)


def pane_note(pane: WorkerPane) -> str:
    label = pane.query_one(".note", Label)
    return str(label.render()) if label.has_class("-shown") else ""


async def test_checking_and_check_failed_stay_visible_in_the_queue_after_the_pane_moves_on(
    repo: Path, tmp_path: Path
) -> None:
    sentinel = tmp_path / "check-fails"
    sentinel.write_text("")
    write_project(repo, GATED, workers=1, extra=gate_config(sentinel))
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        # One slot: task 1's agent exits, task 2 takes the pane while task 1's merge result is checked.
        await wait_for(pilot, lambda: queue_row(app, "1")[0] == "checking", timeout=30)
        assert "[merge] check" in queue_row(app, "1")[1]
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.CHECKING, timeout=30)
        await wait_for(pilot, lambda: pane_of(app, "2") is not None)  # the next tick puts it in the pane
        pane = pane_of(app, "2")
        assert pane is not None
        await wait_for(pilot, lambda: pane.border_subtitle == "checking")
        assert pane_note(pane) == "running the [merge] check on the merge result"
        await wait_for(pilot, lambda: queue_row(app, "2")[0] == "check failed", timeout=30)
        assert queue_row(app, "2")[1] == "check failed: exit 1"
        assert queue_row(app, "1")[0] == "merged"
        await wait_for(pilot, lambda: pane_note(pane) == "check failed: exit 1")
        assert pane.has_class("-error")

        # r re-runs the check on a fresh merge result: it passes now that the sentinel is gone.
        sentinel.unlink()
        app.query_one(QueuePane).select("2")
        await pilot.press("r")
        await wait_for(pilot, lambda: queue_row(app, "2")[0] == "merged", timeout=30)
        await quit_app(pilot, app)
    assert app.return_value == 0


async def test_a_predicted_conflict_shows_in_the_running_tasks_pane_before_it_finishes(repo: Path) -> None:
    write_project(repo, README_CLASH, workers=2)
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: (pane := pane_of(app, "2")) is not None
                       and pane_note(pane) == "⚠ predicted conflict: README.md", timeout=30)
        # Seen while the agent still runs (it lingers after committing), not after the fact.
        assert app.orch.records["2"].status is TaskStatus.RUNNING
        pane = pane_of(app, "2")
        assert pane is not None and pane.has_class("-warning")
        state, note = queue_row(app, "2")
        assert state == "running" and "predicted conflict: README.md" in note
        await wait_for(pilot, lambda: queue_row(app, "2") == ("conflict", "conflict in README.md"), timeout=30)
        await open_conflict_modal(pilot, app)
        await quit_app(pilot, app)
