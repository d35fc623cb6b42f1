"""Snapshot tests of the real app, each screen and dialog at 80x24 (the smallest terminal it must serve) and
160x48: the main screen in several states, the queue, help, add-task, log, summary, quit and conflict.

Frames are made deterministic: a paused pool or a finished run, a frozen clock, `redact` for commit ids
and durations, and pane logs cleared (the demo agent prints temp paths and shas). The log screen runs an
agent command of its own whose output is the same every time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from textual.widgets import DataTable, Log

from tests.conftest import git
from tests.test_ui_app import CONFLICTING, THREE_TASKS, make_app, statuses
from tests.test_ui_app import write_project as write_demo_project
from tests.test_ui_learnable import PRIORITIES
from tuiorch.events import TaskStatus
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import (
    AddTaskScreen,
    ConfirmScreen,
    ConflictScreen,
    HelpScreen,
    LogScreen,
    SummaryScreen,
)
from tuiorch.ui.widgets import QueuePane

FROZEN = 1_700_000_000.0
SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])



def write_project(repo: Path, tasks_md: str, *, workers: int = 2, extra: str = "") -> None:
    """The demo project, its agents unconfined: a screen must look the same with or without bubblewrap."""
    write_demo_project(repo, tasks_md, workers=workers, extra='confine = "off"\n' + extra)

def freeze(app: TuiorchApp) -> None:
    app.clock = lambda: FROZEN
    app.redact = True
    # An indeterminate ProgressBar (or any animation) draws from Textual's own clock: stop them all.
    app.animation_level = "none"
    # Every notification posted, also the ones already timed out (see announced).
    posted: list[str] = []
    notify = app.notify

    def recording_notify(message: str, *args: Any, **kwargs: Any) -> None:
        posted.append(str(message))
        notify(message, *args, **kwargs)

    app.notify = recording_notify  # type: ignore[method-assign]
    app.posted_notifications = posted  # type: ignore[attr-defined]


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


def announced(app: TuiorchApp, words: str) -> bool:
    """A notification with `words` has been posted: one still on its way would toast over the next frame, and
    clearing toasts only reaches the screen on top, not the one a modal is drawn over. One that has already
    timed out (a slow machine) counts too: it will not toast again."""
    return any(words in message for message in app.posted_notifications)  # type: ignore[attr-defined]


def paused_app(repo: Path) -> TuiorchApp:
    write_project(repo, dedent(THREE_TASKS).replace("## Task 3: Add gamma", "## Task 3: Add gamma\ndepends: 1"),
                  workers=2)
    app = make_app(repo, paused=True, watch_tasks=False)
    freeze(app)
    return app


@SIZES
def test_main_screen_with_a_paused_pool(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    app = paused_app(repo)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await pilot.press("down", "h")  # hold task 2 so the wait reasons differ
        await quiet_frame(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_queue_after_reordering_and_a_priority_key(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    write_project(repo, PRIORITIES, workers=1)
    app = make_app(repo, paused=True, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await pilot.press("down", "down", "T", "down", "3")  # polish task to the top, then the foundation one to polish
        await settle(pilot, lambda: app.queue_in_sync)
        await quiet_frame(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    assert [row.task.id for row in app.orch.queue_view()] == ["3", "1", "2"]


@SIZES
def test_main_screen_after_a_run_with_every_outcome(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    write_project(repo, "## Task 1: Fails\nexit: 3\n\n## Task 2: Idle\nnothing\n\n## Task 3: Works\n"
                        "```write w.txt\nw\n```\n", workers=3, extra="retries = 0\n")
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: not app.orch.has_active_work() and statuses(app)["3"] == "merged")
        app.query_one(QueuePane).select("1")
        await quiet_frame(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_help_screen(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    app = paused_app(repo)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await quiet_frame(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_add_task_form_with_an_error(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    app = paused_app(repo)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await quiet_frame(pilot)
        await pilot.press("a")
        await settle(pilot, lambda: isinstance(app.screen, AddTaskScreen))
        await pilot.press("2", "enter", *"Again", "enter", "ctrl+s")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_quit_asks_while_workers_run(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    write_project(repo, "## Task 1: Thinks\nsleep: 60\n", workers=1)
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        # Steady from here: the agent has said all it says before it thinks for a minute.
        record = app.orch.records["1"]
        await settle(pilot, lambda: record.status is TaskStatus.RUNNING and any("thinking" in x for x in record.tail))
        await pilot.pause(0.3)
        await quiet_frame(pilot)
        await pilot.press("q")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


#: An agent whose log is the same every run: lines, then a file tuiorch commits for it (no braces: the
#: command's {placeholders} are tuiorch's).
STEADY_AGENT = (
    "import pathlib\n"
    "for n in range(1, 31): print('step %d of 30: checking module %d' % (n, n))\n"
    "pathlib.Path('steady.txt').write_text('steady')\n"
    "print('done')\n"
)


@SIZES
def test_log_screen(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    command = json.dumps([sys.executable, "-c", STEADY_AGENT])
    write_project(repo, "## Task 1: Steady\n", workers=1)
    (repo / "tuiorch.toml").write_text(
        f'workers = 1\n\n[agent]\npreset = "custom"\ncommand = {command}\nstuck_after = "0"\n'
    )
    git(repo, "commit", "-qam", "a steady agent")
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: statuses(app)["1"] == "merged")
        await quiet_frame(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: isinstance(app.screen, LogScreen))
        log = app.screen.query_one(Log)
        await settle(pilot, lambda: any("done" in line for line in log.lines))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_summary_after_a_finished_run(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: set(statuses(app).values()) == {"merged"})
        # The queue's cursor shows through the summary's margins. Once nothing waits it stays on the task it
        # was on when the screen last refreshed, the last task or the one before, depending on how the
        # refreshes fell: it is put on the last task, so the frame does not depend on the machine's speed.
        app.query_one(QueuePane).select("3")
        await quiet_frame(pilot)
        await pilot.press("s")
        await settle(pilot, lambda: isinstance(app.screen, SummaryScreen)
                     and "…" not in app.screen.query_one("#summary-tasks", DataTable).get_column("changes"))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_main_screen_with_a_conflict_waiting(repo: Path, snap_compare, size: tuple[int, int]) -> None:  # noqa: ANN001
    # The conflict shows in the header, the queue and its pane; nothing opens over the main screen.
    write_project(repo, dedent(CONFLICTING).replace("## Task 2: Beta says hi\n", "## Task 2: Beta says hi\n\nsleep: 1\n"))
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await settle(pilot, lambda: app.orch.records["2"].status is TaskStatus.CONFLICT
                     and app.orch.records["1"].status is TaskStatus.MERGED and not app.orch.has_active_work())
        app.query_one(QueuePane).select("2")
        await quiet_frame(pilot)
        app.clear_notifications()  # the conflict's toast may come in after the frame was quieted
        await pilot.pause(0.2)
        assert app.screen is app.screen_stack[0]

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_conflict_modal(repo: Path, snap_compare) -> None:  # noqa: ANN001
    # Task 2 thinks longer, so task 1 always merges first and task 2 is the one in conflict.
    write_project(repo, dedent(CONFLICTING).replace("## Task 2: Beta says hi\n", "## Task 2: Beta says hi\n\nsleep: 1\n"))
    app = make_app(repo, watch_tasks=False)
    freeze(app)

    async def run_before(pilot) -> None:  # noqa: ANN001
        # The frame is taken once the engine has nothing left to do: task 1 merged, task 2 waits on the user.
        await settle(pilot, lambda: app.orch.records["2"].status is TaskStatus.CONFLICT
                     and app.orch.records["1"].status is TaskStatus.MERGED and not app.orch.has_active_work()
                     and announced(app, "conflicts with"))
        await quiet_frame(pilot)
        app.query_one(QueuePane).select("2")
        await pilot.press("c")  # the modal never opens by itself
        await settle(pilot, lambda: isinstance(app.screen, ConflictScreen) and app.screen.current is not None)
        app.clear_notifications()  # "conflicts with main: press c" may arrive after the frame was quieted
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
    assert app.orch.records["2"].status is TaskStatus.CONFLICT


# Timing-sensitive on a loaded 2-core machine (real processes, kill -9 at chosen moments, frames drawn
# while agents run): a failure is tried again up to twice, and the report counts each rerun.
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)
