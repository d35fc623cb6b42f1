"""Keys on the real engine: a add a task, m merge now, g send back a failed check, e edit a conflict by hand."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from textual.widgets import Input, Label, TextArea

from tests.conftest import git
from tests.test_ui_app import (
    CONFLICTING,
    SIZE,
    THREE_TASKS,
    main_merges,
    make_app,
    open_conflict_modal,
    wait_for,
    write_project,
)
from tests.test_ui_gate import GATED, gate_config, queue_row, quit_app
from tuiorch.events import TaskStatus
from tuiorch.tasks import load_tasks
from tuiorch.ui.screens import AddTaskScreen, ConflictScreen
from tuiorch.ui.widgets import QueuePane


async def type_into(pilot, selector: str, text: str) -> None:  # noqa: ANN001
    pilot.app.screen.query_one(selector, Input).focus()
    await pilot.press(*text)


async def test_a_adds_a_task_that_is_queued_written_to_the_file_and_run(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=2)
    app = make_app(repo, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddTaskScreen))
        await type_into(pilot, "#add-id", "4")
        await type_into(pilot, "#add-title", "Add delta")
        await type_into(pilot, "#add-depends", "1")
        app.screen.query_one("#add-description", TextArea).load_text("```write delta.txt\ndelta\n```\n")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, AddTaskScreen))
        await wait_for(pilot, lambda: app.query_one(QueuePane).row_of("4") is not None)
        assert queue_row(app, "4")[0] == "queued"
        assert app.query_one(QueuePane).selected_id == "4"
        on_file = {task.id: task for task in load_tasks(repo / "TASKS.md")}
        assert on_file["4"].title == "Add delta" and on_file["4"].depends == ("1",)
        await pilot.press("p")  # resume: the new task runs like any other
        await wait_for(pilot, lambda: app.orch.records["4"].status is TaskStatus.MERGED, timeout=60)
        await quit_app(pilot, app)
    assert "feat: Add delta" in main_merges(repo)
    assert git(repo, "show", "main:delta.txt") == "delta"


async def test_a_bad_new_task_is_refused_in_the_form_and_nothing_is_written(repo: Path) -> None:
    write_project(repo, THREE_TASKS, workers=1)
    before = (repo / "TASKS.md").read_text()
    app = make_app(repo, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddTaskScreen))
        screen = app.screen
        error = screen.query_one("#add-error", Label)
        await type_into(pilot, "#add-id", "2")
        await type_into(pilot, "#add-title", "Again")
        await pilot.press("enter")  # enter moves to the next field; it never submits a half-filled task
        await pilot.pause(0.1)
        assert str(error.render()) == ""
        assert app.focused is screen.query_one("#add-depends", Input)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert str(error.render()) == "a task 2 exists already"
        screen.query_one("#add-id", Input).value = "../x"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "unsafe task id" in str(error.render())
        screen.query_one("#add-id", Input).value = "5"
        await type_into(pilot, "#add-depends", "9")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "unknown task '9'" in str(error.render())
        assert isinstance(app.screen, AddTaskScreen)  # still open, so the user can fix it
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AddTaskScreen))
        assert set(app.orch.records) == {"1", "2", "3"}
        await quit_app(pilot, app)
    assert (repo / "TASKS.md").read_text() == before


async def test_m_merges_a_finished_task_when_auto_merge_is_off(repo: Path) -> None:
    write_project(repo, THREE_TASKS.split("## Task 2")[0], workers=1, extra="\n[merge]\nauto = false\n")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: queue_row(app, "1")[0] == "finished", timeout=30)
        assert "waiting for your word" in queue_row(app, "1")[1]
        await pilot.pause(0.5)
        assert app.orch.records["1"].status is TaskStatus.FINISHED  # it waits, nothing merges by itself
        app.query_one(QueuePane).select("1")
        await pilot.press("m")
        await wait_for(pilot, lambda: queue_row(app, "1")[0] == "merged", timeout=30)
        await quit_app(pilot, app)
    assert main_merges(repo) == ["feat: Add alpha"]


async def test_g_sends_a_check_failed_task_back_to_its_agent(repo: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "check-fails"
    sentinel.write_text("")
    write_project(repo, GATED, workers=2, extra=gate_config(sentinel))
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: queue_row(app, "2")[0] == "check failed", timeout=30)
        sentinel.unlink()
        app.query_one(QueuePane).select("2")
        await pilot.press("g")
        # Its agent runs again on its branch, told in its prompt that the check failed.
        await wait_for(pilot, lambda: app.orch.records["2"].status is not TaskStatus.CHECK_FAILED, timeout=10)
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=30)
        assert "fails the check" in (repo / ".git" / "tuiorch" / "prompts" / "2.md").read_text()
        await quit_app(pilot, app)
    assert app.return_value == 0


@pytest.fixture
def hand_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """$EDITOR: a real program that resolves the file it is given by writing a merged text without markers."""
    script = tmp_path / "editor.py"
    script.write_text(textwrap.dedent("""\
        import sys
        from pathlib import Path
        target = Path(sys.argv[-1])
        assert "<<<<<<<" in target.read_text()
        target.write_text("hello and hi, merged by hand\\n")
    """))
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)
    return "hello and hi, merged by hand"


async def test_e_edits_the_conflict_by_hand_and_main_gets_the_merge(repo: Path, hand_editor: str) -> None:
    write_project(repo, textwrap.dedent(CONFLICTING).replace("## Task 2: Beta says hi\n",
                                                             "## Task 2: Beta says hi\n\nsleep: 0.5\n"))
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        assert await open_conflict_modal(pilot, app) == "2"
        await pilot.press("e")
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=30)
        await wait_for(pilot, lambda: not isinstance(app.screen, ConflictScreen))
        await quit_app(pilot, app)
    assert app.return_value == 0
    assert git(repo, "show", "main:shared.txt") == hand_editor
    assert sorted(main_merges(repo)) == ["feat: Alpha says hello", "feat: Beta says hi"]
