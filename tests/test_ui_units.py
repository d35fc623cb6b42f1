"""The TUI's pure parts: text formatting, the event bridge, and the keymap's agreement with config."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.binding import Binding

from tuiorch import events as ev
from tuiorch.config import DEFAULT_KEYMAP
from tuiorch.model.status import TaskStatus
from tuiorch.tasks import TaskFileError, load_tasks
from tuiorch.ui import messages
from tuiorch.ui.bindings import MAIN_BINDINGS, KeymapError, validate_keymap
from tuiorch.ui.bridge import Bridge
from tuiorch.ui.format import (
    PoolCounts,
    exit_code_for,
    format_deps,
    format_duration,
    has_conflict_markers,
    header_text,
)
from tuiorch.ui.screens.add_task import append_task, build_task
from tuiorch.ui.screens.conflict import ConflictScreen
from tuiorch.ui.screens.diff import DiffScreen
from tuiorch.ui.widgets.worker_grid import _slot_record


def test_durations_read_like_a_clock() -> None:
    assert format_duration(None) == "—"
    assert format_duration(7.9) == "7s"
    assert format_duration(185) == "3m05s"
    assert format_duration(3720) == "1h02m"


def test_deps_tick_the_merged_ones() -> None:
    assert format_deps(("1", "2"), {"1"}) == "1✓ 2"
    assert format_deps((), set()) == "—"


def test_exit_code_is_zero_only_when_everything_merged() -> None:
    assert exit_code_for(["merged", "merged"]) == 0
    assert exit_code_for(["merged", "failed"]) == 1
    assert exit_code_for(["merged", "queued"]) == 1


def test_conflict_markers_are_found_but_markdown_rules_are_not() -> None:
    assert has_conflict_markers("a\n<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n")
    assert not has_conflict_markers("Title\n========\n\ntext\n")


def test_bridge_coalesces_output_without_losing_lines() -> None:
    posted: list[object] = []
    bridge = Bridge(posted.append, tail_lines=3)
    bridge.sink(ev.TaskOutput(task="1", lines=("a", "b")))
    bridge.sink(ev.TaskOutput(task="1", lines=("c", "d")))
    first, second = posted
    assert isinstance(second, messages.OutputReady) and second.can_replace(first)
    # Only the bounded tail is kept; nothing older than the pane could show.
    assert bridge.take_output("1") == ["b", "c", "d"]
    assert bridge.take_output("1") == []


def test_bridge_turns_each_event_into_its_message() -> None:
    posted: list[object] = []
    bridge = Bridge(posted.append)
    bridge.sink(ev.ConflictFound(task="3", paths=("a.txt",), kinds={"a.txt": "content"}))
    bridge.sink(ev.PoolChanged(workers=4, paused=True))
    bridge.sink(ev.Merged(task="2", commit="abc"))
    bridge.sink(ev.Notice(message="TASKS.md:3: bad", level="error"))
    conflict, pool, merged, notice = posted
    assert conflict == messages.ConflictArrived("3", ("a.txt",), {"a.txt": "content"})
    assert pool == messages.PoolUpdated(4, True)
    assert merged == messages.TaskChanged("2", "merged")
    assert notice == messages.NoticeArrived("TASKS.md:3: bad", "error")


def test_every_configurable_action_has_a_binding_with_the_documented_key() -> None:
    screens = [*MAIN_BINDINGS, *ConflictScreen.BINDINGS, *DiffScreen.BINDINGS]
    bindings = {b.id: b.key for b in screens if isinstance(b, Binding)}
    assert {action: bindings.get(action) for action in DEFAULT_KEYMAP} == DEFAULT_KEYMAP


def test_keymap_rejects_unknown_actions_with_a_clear_message() -> None:
    assert validate_keymap({"move_up": "u"}) == {"move_up": "u"}
    with pytest.raises(KeymapError, match=r"\[keymap\] fly: unknown action"):
        validate_keymap({"fly": "f"})


def test_the_add_task_form_checks_like_the_task_file() -> None:
    task = build_task("7", " Add docs ", "polish", "1, 2 2", "docs/, README.md", "body\n", {"1", "2"})
    assert (task.id, task.title, task.priority.label) == ("7", "Add docs", "polish")
    assert task.depends == ("1", "2") and task.touches == ("docs/", "README.md")
    for fields, message in [
        (("", "t", "feature", "", "", ""), "needs an id"),
        (("a b", "t", "feature", "", "", ""), "unsafe task id"),
        (("1", "t", "feature", "", "", ""), "exists already"),
        (("8", " ", "feature", "", "", ""), "needs a title"),
        (("8", "t", "feature", "9", "", ""), "unknown task '9'"),
        (("8", "t", "feature", "8", "", ""), "depends on itself"),
        (("8", "t", "feature", "", "a #b", ""), "touches path"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_task(*fields, {"1", "2"})


def test_a_task_added_to_tasks_toml_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "tasks.toml"
    path.write_text('[[task]]\nid = "1"\ntitle = "One"\n')
    append_task(path, build_task("2", "Two", "foundation", "1", "src/", "line one\nline two", {"1"}))
    loaded = load_tasks(path)
    assert [(t.id, t.depends, t.priority.label, t.description) for t in loaded] == [
        ("1", (), "feature", ""), ("2", ("1",), "foundation", "line one\nline two")]
    before = path.read_text()
    with pytest.raises(TaskFileError, match="duplicate"):
        append_task(path, build_task("2", "Again", "feature", "", "", "", set()))
    assert path.read_text() == before


def test_bridge_counts_the_lines_a_flood_pushed_past_the_pane() -> None:
    bridge = Bridge(lambda _message: None, tail_lines=3)
    bridge.sink(ev.TaskOutput(task="1", lines=tuple("abcde")))
    bridge.sink(ev.TaskOutput(task="1", lines=("f",)))
    assert bridge.waiting_tasks() == ["1"]
    assert bridge.take_output_counted("1") == (["d", "e", "f"], 3)
    assert bridge.take_output_counted("1") == ([], 0)


def test_the_header_keeps_every_outcome_and_the_cost_at_80_columns() -> None:
    counts = PoolCounts(workers=2, paused=False, running=0, queued=0, merged=1, failed=1, conflict=1, empty=2)
    spent = "11.5k tokens · $0.043"
    wide = header_text("p-claude", counts, spent, width=158)
    assert wide == (
        "tuiorch · p-claude │ pool 2 │ running 0 │ queued 0 │ merged 1 │ conflict 1 │ failed 1 │ empty 2 │ "
        "11.5k tokens · $0.043"
    )
    narrow = header_text("p-claude", counts, spent, width=78)
    assert len(narrow) <= 78
    for shown in ("pool 2", "merged 1", "conflict 1", "failed 1", "empty 2", "$0.043"):
        assert shown in narrow
    busy = PoolCounts(workers=2, paused=True, running=2, queued=5, merged=0, failed=0, conflict=0)
    assert header_text("repo", busy, "850 tokens", width=78) == (
        "repo │ pool 2 (paused) │ running 2 │ queued 5 │ merged 0 │ 850 tokens"  # counts at work stay
    )


def test_a_slot_pane_names_the_last_task_of_its_slot_even_one_it_never_saw_running() -> None:
    # Task 3 started in slot 1 and left it (finished) between two refreshes of the pane, which last saw
    # task 2 there: the pane shows task 3, as the engine's record of the slot says, not task 2.
    records = {tid: SimpleNamespace(status=TaskStatus.MERGED, tid=tid) for tid in ("2", "3")}
    orch = SimpleNamespace(slots=[None], last_in_slot={0: "3"}, records=records)
    pane = SimpleNamespace(slot=0, task_id="2")
    assert _slot_record(orch, pane).tid == "3"  # type: ignore[arg-type]
    # A slot that never ran anything stays idle; a task sent back to the queue is not shown.
    assert _slot_record(SimpleNamespace(slots=[None], last_in_slot={}, records=records),
                        SimpleNamespace(slot=0, task_id=None)) is None  # type: ignore[arg-type]
    records["3"].status = TaskStatus.QUEUED
    assert _slot_record(orch, pane) is None  # type: ignore[arg-type]
