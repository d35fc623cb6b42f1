"""Review and conflict keys on the real app and engine, with real git repositories and the demo agent.

The conflict: base branch `master` holds big.py (2,000 lines); tasks 1 and 2 both change lines 10 and 1,600,
task 2 also line 1,900 (cleanly). Task 1 merges first, so task 2 is the one in conflict.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Label, OptionList, Static

from tests.conftest import git
from tests.review_project import ONE, TWO, deep_conflict_repo, numbered, write_block
from tests.test_ui_app import make_app, quit_app, wait_for
from tuiorch.events import TaskStatus
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import ConfirmScreen, ConflictScreen, DiffScreen, NoteScreen, SummaryScreen
from tuiorch.ui.widgets import QueuePane
from tuiorch.ui.widgets.diff_view import DiffView

SIZE = (120, 40)


def where(app: TuiorchApp) -> str:
    return str(app.screen.query_one("#conflict-where", Label).render())


def hunk_text(app: TuiorchApp) -> str:
    """The hunk view as a user reads it (the Rich renderable drawn to plain text)."""
    static = app.screen.query_one("#conflict-view", Static)
    out = io.StringIO()
    Console(file=out, width=110, color_system=None).print(static.content)
    return out.getvalue()


def conflict_ready(app: TuiorchApp) -> bool:
    record = app.orch.records["2"]
    return record.status is TaskStatus.CONFLICT and not app.orch.is_busy("2")


async def open_conflict(pilot, app: TuiorchApp) -> ConflictScreen:  # noqa: ANN001
    app.query_one(QueuePane).select("2")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen) and app.screen.resolution is not None
                   and app.screen.current is not None)
    await pilot.pause(0.1)
    assert isinstance(app.screen, ConflictScreen)
    return app.screen


def notes(app: TuiorchApp) -> list[str]:
    """The notifications shown so far, oldest first."""
    return [str(n.message) for n in app._notifications]


def main_big(repo: Path) -> list[str]:
    return git(repo, "show", "master:big.py").splitlines()


async def test_the_conflict_never_opens_by_itself_and_is_resolved_hunk_by_hunk_deep_in_the_file(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        await pilot.pause(1.0)
        assert app.screen is app.screen_stack[0]  # shown, not pushed in the user's face
        assert "conflict 1" in str(app.query_one("#header").render())
        screen = await open_conflict(pilot, app)
        title = str(screen.query_one("#conflict-title", Label).render())
        assert "master ⟵ task-2" in title  # the real branch names, not "main"/"ours"
        assert "hunk 1 of 2" in where(app) and "line 10 " in where(app) and "open" in where(app)
        view = hunk_text(app)
        assert "master (o)" in view and "task-2 (t)" in view
        await pilot.press("u")  # nothing chosen yet: the key says so rather than pass silently
        assert "nothing to undo" in notes(app)[-1]
        assert "value_10 = 'one'" in view and "value_10 = 'two'" in view
        assert "value_9 = 9" in view and "value_11 = 11" in view  # context around the hunk
        await pilot.press("n")
        assert "hunk 2 of 2" in where(app) and "line 1,600" in where(app)
        view = hunk_text(app)
        assert "value_1600 = 'one'" in view and "value_1600 = 'two'" in view and "value_1599 = 1599" in view
        assert "value_10 = " not in view and "merge base" not in view
        await pilot.press("a")  # the merge base's lines, on a key
        view = hunk_text(app)
        assert "merge base" in view and "value_1600 = 1600" in view
        await pilot.press("p")
        assert "hunk 1 of 2" in where(app)
        await pilot.press("t")  # hunk 1: the task's side; on to the next open hunk
        assert "hunk 2 of 2" in where(app)
        assert "1 of 2 hunks open" in str(screen.query_one("#conflict-status", Label).render())
        await pilot.press("u")  # undo: hunk 1 is open again, and shown
        assert "hunk 1 of 2" in where(app) and "open" in where(app)
        assert "2 of 2 hunks open" in str(screen.query_one("#conflict-status", Label).render())
        await pilot.press("o")  # hunk 1: master's side
        assert "hunk 2 of 2" in where(app)
        await pilot.press("b")  # hunk 2: both, master's first; the last choice commits and merges
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=30)
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        await quit_app(pilot, app)
    lines = main_big(repo)
    assert len(lines) == 2001
    assert lines[9] == "value_10 = 'one'"
    assert lines[1599:1601] == ["value_1600 = 'one'", "value_1600 = 'two'"]
    assert lines[1900] == "value_1900 = 'two only'"  # the task's clean change beside the conflict is kept
    assert app.return_value == 0


async def test_choices_survive_closing_the_modal_and_T_takes_the_whole_file(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        screen = await open_conflict(pilot, app)
        await pilot.press("o")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        assert app.orch.records["2"].status is TaskStatus.CONFLICT
        screen = await open_conflict(pilot, app)
        assert "1 of 2 hunks open" in str(screen.query_one("#conflict-status", Label).render())
        assert "hunk 2 of 2" in where(app)  # reopens on the first hunk still open
        await pilot.press("u", "T")  # every hunk of the file: the task's side
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=30)
        await quit_app(pilot, app)
    assert git(repo, "show", "master:big.py") + "\n" == TWO


async def test_R_asks_before_dropping_the_tasks_work(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        await open_conflict(pilot, app)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one("#confirm-question", Label).render())
        assert "task-2" in question and "master" in question
        await pilot.press("n")  # no: nothing is dropped
        await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen))
        assert app.orch.records["2"].status is TaskStatus.CONFLICT
        assert "task-2" in git(repo, "branch", "--list", "task-2")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        # Redone from the new master, the task writes its file again and merges without a conflict.
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=60)
        await quit_app(pilot, app)
    assert git(repo, "show", "master:big.py") + "\n" == TWO


@pytest.fixture
def recording_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EDITOR: a real program that records its arguments and the file it was given, then resolves the
    file by hand (the task's line at 1,600, master's at 10)."""
    record = tmp_path / "editor.json"
    script = tmp_path / "editor.py"
    script.write_text(textwrap.dedent(f"""\
        import json, sys
        from pathlib import Path
        target = Path(sys.argv[-1])
        text = target.read_text()
        Path({str(record)!r}).write_text(json.dumps({{"argv": sys.argv[1:], "text": text}}))
        lines = []
        skip = None
        for line in text.splitlines(keepends=True):
            if line.startswith("<<<<<<< "):
                skip = "ours"
            elif line.startswith("||||||| "):
                skip = "base"
            elif line.rstrip() == "=======":
                skip = "theirs"
            elif line.startswith(">>>>>>> "):
                skip = None
            elif skip in (None, "theirs"):
                lines.append(line)
        target.write_text("".join(lines))
    """))
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)
    return record


async def test_e_opens_the_editor_at_the_hunk_with_branch_named_markers(tmp_path: Path, recording_editor: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        await open_conflict(pilot, app)
        await pilot.press("n", "e")
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=30)
        await quit_app(pilot, app)
    seen = json.loads(recording_editor.read_text())
    argv, text = seen["argv"], seen["text"]
    lines = text.splitlines()
    line = int(argv[0].lstrip("+"))
    assert lines[line - 1] == "<<<<<<< master" and lines[line] == "value_1600 = 'one'"
    assert ">>>>>>> task-2" in lines  # the same names as in the modal, master's side first
    assert git(repo, "show", "master:big.py") + "\n" == TWO


async def test_g_hands_the_conflict_to_the_agent_and_no_stale_modal_is_left(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        await open_conflict(pilot, app)
        await pilot.press("g")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=60)
        await pilot.pause(1.5)
        assert app.screen is app.screen_stack[0]
        await quit_app(pilot, app)
    lines = main_big(repo)
    assert "value_1600 = 'one'" in lines and "value_1600 = 'two'" in lines  # the demo resolver keeps both


async def test_the_modal_closes_itself_when_its_conflict_is_gone(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: conflict_ready(app), timeout=60)
        await open_conflict(pilot, app)
        await app.orch.hand_to_agent("2")  # resolved from elsewhere (the main screen's g)
        await wait_for(pilot, lambda: app.orch.records["2"].status is TaskStatus.MERGED, timeout=60)
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0], timeout=5)
        await quit_app(pilot, app)


def diff_source(app: TuiorchApp) -> str:
    return str(app.screen.query_one("#diff-source", Label).render())


async def test_d_reviews_a_finished_task_m_merges_it_and_g_sends_the_other_back_with_a_note(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo", merge="auto = false", second_sleep=0)
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: {r.status for r in app.orch.records.values()} == {TaskStatus.FINISHED},
                       timeout=60)
        app.query_one(QueuePane).select("1")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None)
        assert "branch task-1 vs master · 1 file +2 −2 · finished" in diff_source(app)
        view = app.screen.query_one(DiffView)
        assert [row.kind for row in view.rows].count("line") == 2 * 7 + 2  # two hunks, 3 lines of context
        assert any(row.kind == "line" and row.line is not None and row.line.text == "value_1600 = 'one'"
                   for row in view.rows)
        await pilot.press("v")
        assert "side by side" in diff_source(app)
        assert any(row.kind == "pair" and row.line is not None and row.right is not None
                   and row.line.text == "value_10 = 10" and row.right.text == "value_10 = 'one'" for row in view.rows)
        await pilot.press("m")
        await wait_for(pilot, lambda: app.orch.records["1"].status is TaskStatus.MERGED, timeout=30)
        assert app.screen is app.screen_stack[0]
        await pilot.press("s")  # the summary tells how much each task changed
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen) and list(
            app.screen.query_one("#summary-tasks", DataTable).get_column("changes")) == ["1 file +2 −2", "1 file +3 −3"])
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        app.query_one(QueuePane).select("2")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None)
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen))
        await pilot.press("enter")  # an empty note is refused
        assert isinstance(app.screen, NoteScreen)
        app.screen.query_one(Input).value = "keep line 1,600 as master has it"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        # Its agent runs again on its own branch, with the note in its prompt.
        await wait_for(pilot, lambda: app.orch.records["2"].attempts == 1
                       and app.orch.records["2"].status is TaskStatus.FINISHED, timeout=60)
        prompt = (repo / ".git" / "tuiorch" / "prompts" / "2.md").read_text()
        assert "keep line 1,600 as master has it" in prompt
        await quit_app(pilot, app)
    assert git(repo, "show", "master:big.py") + "\n" == ONE


async def test_the_diff_is_live_while_the_agent_works_and_includes_its_uncommitted_files(tmp_path: Path) -> None:
    repo = deep_conflict_repo(tmp_path / "repo", workers=1)
    (repo / "TASKS.md").write_text("## Task 1: Slow reviewer\n\nlinger: 60\n\n" + write_block("big.py", numbered({5: "five"})))
    git(repo, "commit", "-qam", "one slow task")
    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.orch.records["1"].status is TaskStatus.RUNNING
                       and app.orch.records["1"].lines > 3, timeout=30)
        await wait_for(pilot, lambda: git(repo, "rev-list", "--count", "master..task-1") == "1", timeout=30)
        app.query_one(QueuePane).select("1")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None)
        assert "task-1 + uncommitted work vs master · 1 file +1 −1 · running · live" in diff_source(app)
        await pilot.press("m")  # not finished: nothing to merge yet, and the key says why
        assert "task 1 is running: only a finished task waiting for your word is merged here" in notes(app)[-1]
        await pilot.press("g")
        assert "only a finished task or a failed check goes back to its agent" in notes(app)[-1]
        await pilot.press("n")  # one file so far
        assert "only one file changed" in notes(app)[-1]
        assert app.orch.records["1"].status is TaskStatus.RUNNING and isinstance(app.screen, DiffScreen)
        worktree = app.orch.records["1"].worktree
        assert worktree is not None
        (worktree / "notes.md").write_text("# work in progress\n")  # the agent's next, uncommitted step
        await wait_for(pilot, lambda: "2 files +2 −1" in diff_source(app), timeout=10)
        assert [f.path for f in app.screen.diff.files] == ["big.py", "notes.md"]  # type: ignore[attr-defined]
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        await pilot.press("n")  # to the next file
        assert screen.current_file == 1 and screen.query_one("#diff-files", OptionList).highlighted == 1
        await pilot.press("p")
        assert screen.current_file == 0 and screen.query_one("#diff-files", OptionList).highlighted == 0
        await pilot.press("escape")
        await quit_app(pilot, app)
