"""The real TUI on the real engine under Pilot: demo agent, real git repos, real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import git
from tests.test_headless import write_project
from tuiorch.config import load_config
from tuiorch.events import TaskStatus
from tuiorch.tasks import load_tasks
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import ConfirmScreen, ConflictScreen, SummaryScreen
from tuiorch.ui.widgets import QueuePane, WorkerPane

SIZE = (120, 40)


def make_app(repo: Path, **options: bool) -> TuiorchApp:
    return TuiorchApp(repo, load_config(repo), load_tasks(repo / "TASKS.md"), repo / "TASKS.md", **options)


async def wait_for(pilot, condition: Callable[[], object], timeout: float = 30.0) -> None:  # noqa: ANN001
    """Let the app run until `condition()` holds (instead of guessing sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition.__doc__ or condition}")
        await pilot.pause(0.05)


async def quit_app(pilot, app: TuiorchApp, timeout: float = 30.0) -> None:  # noqa: ANN001
    """Close whatever dialog is up (a conflict modal may open at any moment), quit, confirm if asked."""
    deadline = time.monotonic() + timeout
    while app.is_running:
        assert time.monotonic() < deadline, f"could not quit: {app.screen}"
        if isinstance(app.screen, ConfirmScreen):
            await pilot.press("y")
        elif app.screen is app.screen_stack[0]:
            await pilot.press("q")
        else:
            await pilot.press("escape")
        await pilot.pause(0.1)


async def open_conflict_modal(pilot, app: TuiorchApp, timeout: float = 60.0) -> str:  # noqa: ANN001
    """Wait for a task in conflict (the modal never opens by itself), open it with `c`; its task id."""

    def in_conflict() -> str | None:
        return next((tid for tid, rec in app.orch.records.items()
                     if rec.status is TaskStatus.CONFLICT and not app.orch.is_busy(tid)), None)

    await wait_for(pilot, lambda: in_conflict() is not None, timeout=timeout)
    task_id = in_conflict()
    assert task_id is not None
    app.query_one(QueuePane).select(task_id)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen) and app.screen.current is not None)
    return task_id


def statuses(app: TuiorchApp) -> dict[str, str]:
    return {tid: rec.status.value for tid, rec in app.orch.records.items()}


def agent_processes() -> list[psutil.Process]:
    """Demo agents started by this test process (other test runs may share the machine)."""
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "tuiorch.demo_agent" in proc.cmdline():
                found.append(proc)
    return found


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main_merges(repo: Path) -> list[str]:
    """Subjects of the two-parent commits on main."""
    return git(repo, "log", "--merges", "--first-parent", "--format=%s", "main").splitlines()


THREE_TASKS = """\
    ## Task 1: Add alpha

    ```write alpha.txt
    alpha
    ```

    ## Task 2: Add beta

    ```write beta.txt
    beta
    ```

    ## Task 3: Add gamma

    ```write gamma.txt
    gamma
    ```
"""

SLOW_TASKS = """\
    ## Task 1: Slow one
    sleep: 30

    ## Task 2: Slow two
    sleep: 30

    ## Task 3: Slow three
    sleep: 30
"""

CONFLICTING = """\
    ## Task 1: Alpha says hello

    ```write shared.txt
    hello from one
    ```

    ## Task 2: Beta says hi

    ```write shared.txt
    hi from two
    ```
"""


async def test_a_demo_run_merges_every_task_into_main_and_quits_with_0(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=2)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: set(statuses(app).values()) == {"merged"}, timeout=60)
        await pilot.pause(0.3)
        header = str(app.query_one("#header").render())
        assert "merged 3" in header and "failed" not in header  # outcomes that did not happen stay out
        await pilot.press("q")  # nothing runs, so no question
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_value == 0
    assert sorted(main_merges(repo)) == ["feat: Add alpha", "feat: Add beta", "feat: Add gamma"]
    assert git(repo, "show", "main:alpha.txt") == "alpha"


async def test_reordering_the_queue_changes_the_start_order_and_survives_a_restart(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.query_one(QueuePane).selected_id == "1"
        await pilot.press("J")  # 1 goes below 2
        await pilot.press("down", "down", "T")  # 3 to the top; the cursor follows it
        await pilot.pause(0.2)
        assert [row.task.id for row in app.orch.queue_view()] == ["3", "2", "1"]
        assert app.query_one(QueuePane).selected_id == "3"
        await quit_app(pilot, app)

    again = make_app(repo, paused=True)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert [row.task.id for row in again.orch.queue_view()] == ["3", "2", "1"]
        await pilot.press("p")  # resume: with one worker the new first task starts first
        await wait_for(pilot, lambda: again.orch.records["3"].status is TaskStatus.MERGED, timeout=60)
        assert again.orch.records["1"].started is None or again.orch.records["1"].started > again.orch.records["3"].started
        await pilot.press("q")
        if isinstance(again.screen, ConfirmScreen):
            await pilot.press("y")
        await wait_for(pilot, lambda: not again.is_running)


async def test_pool_keys_add_and_remove_panes_and_running_workers(repo: Path) -> None:
    write_project(repo, SLOW_TASKS, workers=1)
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        def header_text() -> str:
            return str(app.query_one("#header").render())

        await wait_for(pilot, lambda: app.orch.running_count() == 1)
        assert len(app.query(WorkerPane)) == 1
        await pilot.press("plus")
        # Each step waits for what the user would see, never for a guessed time (the machine may be busy).
        await wait_for(pilot, lambda: app.orch.running_count() == 2)
        await wait_for(pilot, lambda: len(app.query(WorkerPane)) == 2 and "pool 2" in header_text())
        await pilot.press("minus")
        await wait_for(pilot, lambda: app.orch.workers == 1 and "pool 1" in header_text())
        # A shrunk pool lets running work finish: both agents still run, and the dropped slot keeps its pane.
        assert app.orch.running_count() == 2 and len(app.query(WorkerPane)) == 2
        await pilot.press("p", "plus", "plus")
        await wait_for(pilot, lambda: len(app.query(WorkerPane)) == 3 and "pool 3 (paused)" in header_text())
        assert app.orch.running_count() == 2  # paused: the third slot stays empty

        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        agents = agent_processes()
        assert agents, "quitting must ask before it stops running agents"
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_value == 1  # tasks were cancelled, not merged
    deadline = time.monotonic() + 10
    while [proc.pid for proc in agents if alive(proc)]:
        assert time.monotonic() < deadline, "agents outlived the app"
        await asyncio.sleep(0.05)


async def test_c_opens_the_conflict_modal_and_take_ours_lands_the_merge(repo: Path) -> None:
    write_project(repo, CONFLICTING, workers=2)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        loser = await open_conflict_modal(pilot, app)
        winner = "1" if loser == "2" else "2"
        screen = app.screen
        assert isinstance(screen, ConflictScreen) and screen.resolution is not None
        assert [f.path for f in screen.resolution.files] == ["shared.txt"]
        winner_text = {"1": "hello from one", "2": "hi from two"}[winner]
        assert screen.resolution.files[0].ours == winner_text + "\n"
        await pilot.press("o")
        await wait_for(pilot, lambda: app.orch.records[loser].status is TaskStatus.MERGED, timeout=30)
        await wait_for(pilot, lambda: not isinstance(app.screen, ConflictScreen))
        await quit_app(pilot, app)
    assert app.return_value == 0
    assert git(repo, "show", "main:shared.txt") == winner_text
    assert len(main_merges(repo)) == 2


async def test_take_theirs_keeps_the_tasks_version(repo: Path) -> None:
    write_project(repo, CONFLICTING, workers=2)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        loser = await open_conflict_modal(pilot, app)
        await pilot.press("t")
        await wait_for(pilot, lambda: app.orch.records[loser].status is TaskStatus.MERGED, timeout=30)
        await quit_app(pilot, app)
    assert git(repo, "show", "main:shared.txt") == {"1": "hello from one", "2": "hi from two"}[loser]


async def test_abort_and_requeue_redoes_the_task_from_the_new_main(repo: Path) -> None:
    write_project(repo, CONFLICTING, workers=2)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        loser = await open_conflict_modal(pilot, app)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        # Redone on top of the winner's merge, the task now merges cleanly.
        await wait_for(pilot, lambda: app.orch.records[loser].status is TaskStatus.MERGED, timeout=60)
        assert app.orch.records[loser].attempts == 1
        await quit_app(pilot, app)
    assert git(repo, "show", "main:shared.txt") == {"1": "hello from one", "2": "hi from two"}[loser]


async def test_editing_the_task_file_live_adds_tasks_and_a_broken_edit_changes_nothing(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, paused=True)
    task_file = repo / "TASKS.md"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)  # let the watcher start
        task_file.write_text(task_file.read_text() + "\n## Task 4: Add delta\ndepends: 9\n")
        await wait_for(pilot, lambda: any("not applied" in (n.title or "") for n in app._notifications), timeout=10)
        assert "4" not in app.orch.records
        task_file.write_text(task_file.read_text().replace("depends: 9", "depends: 1"))
        await wait_for(pilot, lambda: "4" in app.orch.records, timeout=10)
        assert app.orch.records["4"].task.depends == ("1",)
        await quit_app(pilot, app)


async def test_summary_lists_every_task_and_the_commits_on_main(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=3)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: set(statuses(app).values()) == {"merged"}, timeout=60)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        screen = app.screen
        assert isinstance(screen, SummaryScreen)
        assert [row[0] for row in screen.task_rows] == ["1", "2", "3"]
        assert all(row[2] == "merged" and len(row[4]) == 7 for row in screen.task_rows)
        subjects = {subject for _sha, subject in screen.commit_rows}
        assert {"feat: Add alpha", "feat: Add beta", "feat: Add gamma"} <= subjects
        await quit_app(pilot, app)


@pytest.fixture(autouse=True)
def _no_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c pass")


@pytest.mark.parametrize("size", [SIZE, (80, 24)])
async def test_a_pane_shows_what_the_agent_says_and_costs_and_the_header_the_run_total(
    repo: Path, size: tuple[int, int]
) -> None:
    import json

    from tests.test_agent_words import API_RETRY, custom, project

    usage = {"type": "assistant", "message": {"id": "m1", "model": "claude-sonnet-4-5", "role": "assistant",
             "content": [{"type": "text", "text": "PROGRESS: 1/2 reading"}],
             "usage": {"input_tokens": 900, "output_tokens": 100}}}
    body = "\n".join(["```write hello.txt", "hello", "```", "say: " + json.dumps(usage),
                      "say: " + json.dumps(API_RETRY), "sleep: 60", ""])
    project(repo, body, custom("claude-stream"))
    app = make_app(repo)
    async with app.run_test(size=size) as pilot:
        pane = app.query_one("#slot-1", WorkerPane)

        def status_line() -> str:
            """The status line as far as it is on screen."""
            label = pane.query_one(".status")
            return str(label.render())[: label.size.width]

        await wait_for(pilot, lambda: "retrying API 3/10 after 529" in status_line())
        await wait_for(pilot, lambda: "1.0k tokens" in str(pane.border_subtitle), timeout=5)
        assert "1.0k tokens" in str(pane.border_subtitle)  # the bottom border, where a narrow pane has room
        await wait_for(pilot, lambda: "1.0k tokens" in str(app.query_one("#header").render()), timeout=5)
        await quit_app(pilot, app)
