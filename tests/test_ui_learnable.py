"""What a new user meets on the real app and engine: help, the footer at 80x24, keys that say why they do
nothing, priorities written back, the queue cursor, retry on top of saved work, logs of earlier runs,
panes that follow output, and the summary left on the terminal."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

from rich.console import Console
from textual.widgets import Button, Log, TextArea
from textual.widgets._footer import FooterKey

from tests.conftest import git
from tests.test_ui_app import (
    CONFLICTING,
    SIZE,
    THREE_TASKS,
    make_app,
    quit_app,
    statuses,
    wait_for,
    write_project,
)
from tuiorch.events import Event, TaskOutput, TaskStatus
from tuiorch.tasks import Priority, load_tasks
from tuiorch.ui.screens import AddTaskScreen, ConfirmScreen, HelpScreen, LogScreen, SummaryScreen
from tuiorch.ui.widgets import QueuePane, WorkerPane
from tuiorch.ui.widgets.worker_pane import TailLog

SMALL = (80, 24)

PRIORITIES = """\
    ## Task 1: Lay the ground
    priority: foundation   # first of all

    ```write ground.txt
    ground
    ```

    ## Task 2: A feature

    ```write feature.txt
    feature
    ```

    ## Task 3: Some polish
    priority: polish

    ```write polish.txt
    polish
    ```
"""


def help_rows(app) -> dict[str, str]:  # noqa: ANN001
    """description -> keys, as the help screen lists them."""
    screen = app.screen
    assert isinstance(screen, HelpScreen)
    return {row.name: row.keys for row in screen.rows}


def notes(app) -> list[str]:  # noqa: ANN001
    return [str(n.message) for n in app._notifications]


async def test_question_mark_lists_every_key_as_rebound_and_works_on_a_dialog(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1, extra='\n[keymap]\nmove_up = "u"\nsummary = "S"\n')
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = help_rows(app)
        assert rows["Up"] == "u" and rows["Summary"] == "S"  # the rebinding shows, not the default
        for name in ("Help", "Quit", "Down", "Top", "Hold", "Add", "Pause", "Cancel", "Retry", "Merge",
                     "Send back", "Conflict", "Log", "Foundation", "Polish", "Interrupt", "Cursor up"):
            assert name in rows, name
        # At 80 columns every word of what a key does is there, wrapped, not cut.
        width = app.screen.query_one("#help-table").content_region.width
        assert 0 < width < SMALL[0]
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(app.screen.table())
        shown = " ".join(console.export_text().split())
        for row in app.screen.rows:
            assert " ".join(row.help.split()) in shown, row
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        await pilot.press("question_mark")  # on a dialog, its own keys
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "Close" in help_rows(app)
        await pilot.press("question_mark")  # ? closes help again
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        await quit_app(pilot, app)


async def test_at_80x24_the_footer_keeps_help_and_quit_on_screen(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SMALL) as pilot:

        def footer_drawn() -> bool:
            """the footer is laid out (on a loaded machine that takes a while)"""
            return any(k.region.width > 0 for k in app.query(FooterKey))

        await wait_for(pilot, footer_drawn)
        await pilot.pause(0.1)
        for key in ("question_mark", "q"):
            shown = [k for k in app.query(FooterKey) if k.key == key]
            assert shown, f"{key} is not in the footer"
            region = shown[0].region
            assert region.width > 0 and region.right <= SMALL[0], (key, region)
        await quit_app(pilot, app)


async def test_a_key_that_does_not_apply_says_why(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1, extra="\n[merge]\nauto = false\n")
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.query_one(QueuePane).selected_id == "1"
        for key, why in (
            ("x", "task 1 is queued; only a running task can be cancelled"),
            ("r", "task 1 is queued; only a failed, cancelled, empty or check-failed task is retried"),
            ("m", "task 1 is queued; only a finished task waiting for your word is merged by hand"),
            ("g", "task 1 is queued; only a conflict or a failed check goes back to an agent"),
            ("c", "no task is in conflict"),
            ("l", "task 1 has no log yet: it has not started"),
        ):
            await pilot.press(key)
            await wait_for(pilot, lambda why=why: why in notes(app), timeout=5)
        assert not isinstance(app.screen, ConfirmScreen)  # nothing happened beyond the word
        # The reasons are the engine's: a command refused by it uses the same words.
        assert app.orch.refusal("cancel", "1") == "task 1 is queued; only a running task can be cancelled"
        await quit_app(pilot, app)


async def test_the_queue_cursor_starts_and_stays_on_the_first_waiting_task(repo: Path) -> None:
    write_project(repo, textwrap.dedent(THREE_TASKS).replace("## Task 1: Add alpha\n", "## Task 1: Add alpha\nsleep: 30\n"),
                  workers=1)
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.orch.records["1"].status is TaskStatus.RUNNING)
        await wait_for(pilot, lambda: app.queue_in_sync)
        await pilot.pause(0.2)
        queue = app.query_one(QueuePane)
        assert queue.selected_id == "2"  # not task 1, which started meanwhile
        await pilot.press("J")  # so the queue keys act at once
        await wait_for(pilot, lambda: [row.task.id for row in app.orch.queue_view()] == ["3", "2"])
        assert queue.selected_id == "2"  # the cursor stays with the task the user moved
        await quit_app(pilot, app)


async def test_priority_keys_are_written_back_to_tasks_md_and_T_starts_the_task_next(repo: Path) -> None:
    write_project(repo, PRIORITIES, workers=1)
    task_file = repo / "TASKS.md"
    app = make_app(repo, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        queue = app.query_one(QueuePane)
        queue.select("2")
        await pilot.press("3")  # task 2 becomes polish
        await wait_for(pilot, lambda: load_tasks(task_file)[1].priority is Priority.POLISH)
        queue.select("3")
        await pilot.press("T")  # the polish task must start next, before the foundation one
        await wait_for(pilot, lambda: load_tasks(task_file)[2].priority is Priority.FOUNDATION)
        text = task_file.read_text()
        assert "priority: foundation   # first of all" in text  # the user's formatting is kept
        assert "## Task 2: A feature\npriority: polish\n\n```write feature.txt" in text
        assert "## Task 3: Some polish\npriority: foundation\n" in text
        assert not any("reloaded" in note for note in notes(app))  # our own write is not an edit to apply
        await pilot.press("p")
        await wait_for(pilot, lambda: app.orch.records["3"].status is TaskStatus.MERGED, timeout=60)
        await wait_for(pilot, lambda: app.orch.records["1"].started is not None, timeout=60)
        assert app.orch.records["3"].started < app.orch.records["1"].started
        await quit_app(pilot, app)


async def test_retry_after_cancel_continues_on_the_saved_work(repo: Path) -> None:
    write_project(
        repo,
        """\
        ## Task 1: Two files

        ```write first.txt
        first
        ```

        sleep: 3

        ```write second.txt
        second
        ```
        """,
        workers=1,
    )
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        record = app.orch.records["1"]
        await wait_for(pilot, lambda: any("thinking" in line for line in record.tail))  # first.txt is written
        app.query_one(QueuePane).select("1")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: record.status is TaskStatus.CANCELLED)
        await wait_for(pilot, lambda: "cancelled 1" in str(app.query_one("#header").render()))
        assert "failed" not in str(app.query_one("#header").render())
        await pilot.press("r")
        await wait_for(pilot, lambda: record.status is TaskStatus.MERGED, timeout=60)
        assert not any("already exists" in note for note in notes(app))
        assert not any("not now" in (n.title or "") for n in app._notifications)  # r applied: no refusal
        await quit_app(pilot, app)
    history = git(repo, "log", "--format=%s", "main")
    assert "wip: Two files (attempt 1 stopped)" in history  # the cancelled attempt's work reached main
    assert git(repo, "show", "main:second.txt") == "second"
    prompt = (repo / ".git" / "tuiorch" / "prompts" / "1.md").read_text()
    assert "continue from there" in prompt and "task-1" in prompt


async def test_l_opens_the_log_of_a_task_carried_over_from_an_earlier_run(repo: Path) -> None:
    write_project(repo, textwrap.dedent(THREE_TASKS).split("## Task 3")[0] + "## Task 3: Breaks\nexit: 3\n", workers=2)
    earlier = subprocess.run([sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=repo, capture_output=True)
    assert earlier.returncode == 1
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.orch.records["1"].status is TaskStatus.MERGED  # carried over, not run again
        app.query_one(QueuePane).select("1")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogScreen))
        log = app.screen.query_one(Log)
        await wait_for(pilot, lambda: any("demo agent: task 1" in line for line in log.lines))
        await quit_app(pilot, app)


async def test_a_pane_follows_a_burst_of_output_unless_scrolled_up(repo: Path) -> None:
    write_project(repo, "## Task 1: Chatty\nlines: 1500\nrate: 1000\nsleep: 2\n```write c.txt\nc\n```\n", workers=1)
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(WorkerPane)
        log = pane.query_one(TailLog)
        await wait_for(pilot, lambda: log.line_count > 100, timeout=30)
        for _ in range(5):  # bursts keep coming: the view stays on the newest line
            await pilot.pause(0.3)
            assert log.scroll_offset.y == log.max_scroll_y, (log.scroll_offset.y, log.max_scroll_y)
        log.on_mouse_scroll_up(None)  # the user scrolls up to read
        log.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause(0.6)
        assert log.scroll_offset.y == 0 and not log.following  # left where the user put it
        log.scroll_end(animate=False, immediate=True)
        log.on_mouse_scroll_down(None)  # back at the bottom: it follows again
        await pilot.pause(0.2)
        assert log.following
        await wait_for(pilot, lambda: app.orch.records["1"].status is TaskStatus.MERGED, timeout=60)
        await pilot.pause(0.5)
        assert log.scroll_offset.y == log.max_scroll_y
        assert "committed" in " ".join(log.lines[-3:])
        await quit_app(pilot, app)


async def test_a_pane_starting_on_a_running_task_shows_each_line_once(repo: Path) -> None:
    """A pane that takes over a slot starts from the task's kept tail, then appends each burst of output the
    engine emits. Whenever it starts, that adds up to the agent's lines, each once (a tail kept ahead of the
    emitted output showed the lines in between twice)."""
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, watch_tasks=False)
    emitted: dict[str, list[str]] = {}
    doubled: list[tuple[str, list[str]]] = []
    deliver = app.orch.sink

    def watching(event: Event) -> None:
        if isinstance(event, TaskOutput):
            emitted.setdefault(event.task, []).extend(event.lines)
        for task_id, rec in app.orch.records.items():
            tail = list(rec.tail)  # what a pane switching to this task now would start from
            if tail != emitted.get(task_id, [])[len(emitted.get(task_id, [])) - len(tail):]:
                doubled.append((task_id, tail))
        deliver(event)

    app.orch.sink = watching
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all(s == "merged" for s in statuses(app).values()) and len(statuses(app)) == 3)
        assert not doubled, doubled[:3]
        log = app.query_one(WorkerPane).query_one(TailLog)
        logged = (repo / ".git" / "tuiorch" / "logs" / "3.log").read_text().splitlines()
        await wait_for(pilot, lambda: len(log.lines) >= len(logged), timeout=10)
        await pilot.pause(0.5)  # anything written twice would be there by now
        assert list(log.lines) == logged  # the last task's pane: its log, each line once
        await quit_app(pilot, app)


async def test_quitting_leaves_the_summary_and_names_a_pending_conflict(repo: Path) -> None:
    write_project(repo, textwrap.dedent(CONFLICTING).replace("## Task 2: Beta says hi\n",
                                                             "## Task 2: Beta says hi\n\nsleep: 1\n"))
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.CONFLICT, timeout=60)
        await wait_for(pilot, lambda: not app.orch.has_active_work())
        await quit_app(pilot, app)
    text = app.farewell_text
    assert text.startswith("Summary")
    assert "1 merged, 1 not merged" in text
    assert f"Waiting for you in {app.orch.root}:" in text
    assert "task 2 (Beta says hi): conflict in shared.txt; run tuiorch again and press c" in text


async def test_header_counts_failed_and_empty_apart(repo: Path) -> None:
    write_project(repo, "## Task 1: Fails\nexit: 3\n\n## Task 2: Idle\nnothing\n\n## Task 3: Works\n"
                        "```write w.txt\nw\n```\n", workers=3, extra="retries = 0\n")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: not app.orch.has_active_work() and app.orch.records["3"].status
                       is TaskStatus.MERGED, timeout=60)
        await pilot.pause(0.3)
        header = str(app.query_one("#header").render())
        assert "merged 1" in header and "failed 1" in header and "empty 1" in header, header
        assert "cancelled" not in header and "conflict" not in header
        await quit_app(pilot, app)


async def test_the_add_form_fits_80x24_and_enter_never_submits(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1)
    app = make_app(repo, paused=True, watch_tasks=False)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddTaskScreen))
        button = app.screen.query_one("#add", Button)
        assert button.region.bottom <= SMALL[1] and button.region.right <= SMALL[0] and button.region.height > 0
        for value in ("4", "Add delta", "1", "delta.txt"):  # id, title, depends, touches: enter moves on
            await pilot.press(*value, "enter")
        assert app.focused is app.screen.query_one("#add-description", TextArea)
        assert isinstance(app.screen, AddTaskScreen) and "4" not in app.orch.records
        await pilot.click("#add")
        await wait_for(pilot, lambda: "4" in app.orch.records)
        task = app.orch.records["4"].task
        assert (task.title, task.depends, task.touches) == ("Add delta", ("1",), ("delta.txt",))
        await quit_app(pilot, app)
