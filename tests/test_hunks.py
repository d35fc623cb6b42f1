"""The hunk model of a conflicted file: git's merge split into clean runs and hunks, choices, undo."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuiorch.hunks import (
    BOTH,
    OURS,
    THEIRS,
    Clean,
    Hunk,
    Resolution,
    conflict_file,
    context,
    marker_size,
    merge_texts,
    resolve,
)

BASE = "".join(f"line {i}\n" for i in range(1, 2001))


def edit(text: str, at: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[at - 1] = new
    return "".join(lines)


def test_a_conflict_deep_in_a_file_is_one_hunk_at_its_line_with_context() -> None:
    ours = edit(BASE, 1600, "master's line 1600\n")
    theirs = edit(BASE, 1600, "task's line 1600\n")
    file = conflict_file("big.txt", "content", ours, theirs, BASE)
    assert file.hunk_count == 1
    resolution = Resolution([file], ("master", "task-7"))
    assert resolution.line_of((0, 0)) == 1600
    before, after = context(file.segments, 0, 3)
    assert before == ("line 1597\n", "line 1598\n", "line 1599\n")
    assert after == ("line 1601\n", "line 1602\n", "line 1603\n")
    text, starts = resolution.with_markers(0)
    lines = text.splitlines()
    assert lines[starts[0] - 1] == "<<<<<<< master"
    assert lines[starts[0]] == "master's line 1600"
    assert ">>>>>>> task-7" in lines


def test_hunk_by_hunk_choices_including_both_and_undo() -> None:
    ours = edit(edit(BASE, 10, "ours 10\n"), 1600, "ours 1600\n")
    theirs = edit(edit(BASE, 10, "theirs 10\n"), 1600, "theirs 1600\n")
    file = conflict_file("f.txt", "content", ours, theirs, BASE)
    resolution = Resolution([file], ("master", "task-1"))
    assert resolution.keys == [(0, 0), (0, 1)]
    resolution.choose([(0, 0)], THEIRS)
    resolution.choose([(0, 1)], BOTH)
    assert resolution.done
    kind, text = resolution.result(0)
    assert kind == "text" and text is not None
    lines = text.splitlines()
    assert lines[9] == "theirs 10"
    assert lines[1599:1601] == ["ours 1600", "theirs 1600"]  # both: the base branch's side first
    assert len(lines) == 2001
    assert resolution.undo() == (0, 1)
    assert resolution.open_keys() == [(0, 1)]
    assert resolution.undo() == (0, 0)
    assert resolution.open_keys() == [(0, 0), (0, 1)]
    assert resolution.undo() is None


def test_whole_file_choice_is_one_undo_step_and_keeps_clean_changes_of_both_sides() -> None:
    ours = edit(edit(BASE, 5, "ours 5\n"), 100, "ours only 100\n")
    theirs = edit(edit(BASE, 5, "theirs 5\n"), 900, "theirs only 900\n")
    file = conflict_file("f.txt", "content", ours, theirs, BASE)
    resolution = Resolution([file], ("master", "task-1"))
    resolution.choose([key for key in resolution.keys if key[0] == 0], OURS)
    text = resolution.result(0)[1]
    assert text is not None
    lines = text.splitlines()
    # Taking master's side of the conflicting hunk never reverts what the task changed elsewhere.
    assert lines[4] == "ours 5" and lines[99] == "ours only 100" and lines[899] == "theirs only 900"
    resolution.undo()
    assert not resolution.choices


def test_a_hand_edit_resolves_the_file_and_undo_takes_it_back() -> None:
    file = conflict_file("f.txt", "content", "a\nX\n", "a\nY\n", "a\nb\n")
    resolution = Resolution([file], ("main", "task-1"))
    resolution.set_edited(0, "a\nXY\n")
    assert resolution.done and resolution.result(0) == ("text", "a\nXY\n")
    assert resolution.allowed((0, 0), OURS) is not None
    resolution.undo()
    assert not resolution.done


def test_a_deleted_side_is_a_whole_file_choice_without_both() -> None:
    file = conflict_file("gone.txt", "modify/delete", None, "task text\n", "old\n")
    assert not file.textual and file.hunk_count == 1
    resolution = Resolution([file], ("main", "task-1"))
    assert resolution.allowed((0, 0), BOTH) is not None
    resolution.choose([(0, 0)], OURS)
    assert resolution.result(0) == ("side", OURS)


def test_marker_lines_inside_the_files_do_not_confuse_the_split() -> None:
    ours = "<<<<<<< not a marker\nours\n=======\n"
    theirs = "<<<<<<< not a marker\ntheirs\n=======\n"
    base = "<<<<<<< not a marker\nbase\n=======\n"
    assert marker_size(ours) == 8
    segments = merge_texts(base, ours, theirs)
    assert segments == [Clean(("<<<<<<< not a marker\n",)), Hunk(("ours\n",), ("base\n",), ("theirs\n",)),
                        Clean(("=======\n",))]


def test_a_missing_final_newline_stays_missing() -> None:
    file = conflict_file("f.txt", "content", "a\nX", "a\nY", "a\nb")
    resolution = Resolution([file], ("main", "task-1"))
    resolution.choose([(0, 0)], THEIRS)
    assert resolution.result(0) == ("text", "a\nY")


def git_merge_file(tmp: Path, base: str, ours: str, theirs: str, how: str) -> str:
    for name, text in (("o", ours), ("b", base), ("t", theirs)):
        (tmp / name).write_text(text)
    done = subprocess.run(["git", "merge-file", "-p", "--zdiff3", f"--{how}", "o", "b", "t"], cwd=tmp, capture_output=True,
                          text=True, check=False)
    return done.stdout


LINES = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "d\n", "e\n", "<<<<<<< x\n", "=======\n"]), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=LINES, ours=LINES, theirs=LINES)
def test_every_side_for_every_hunk_is_what_git_resolves_with_that_side(
    tmp_path: Path, base: list[str], ours: list[str], theirs: list[str]
) -> None:
    base_text, ours_text, theirs_text = "".join(base), "".join(ours), "".join(theirs)
    segments = merge_texts(base_text, ours_text, theirs_text)
    count = sum(isinstance(s, Hunk) for s in segments)
    for side, how in ((OURS, "ours"), (THEIRS, "theirs"), (BOTH, "union")):
        assert resolve(segments, [side] * count) == git_merge_file(tmp_path, base_text, ours_text, theirs_text, how)
    if ours_text == base_text:
        assert count == 0 and resolve(segments, []) == theirs_text
    if theirs_text == base_text:
        assert count == 0 and resolve(segments, []) == ours_text


@settings(max_examples=60, deadline=None)
@given(data=st.data(), base=LINES, ours=LINES, theirs=LINES)
def test_undo_walks_back_through_every_choice(data: st.DataObject, base: list[str], ours: list[str],
                                              theirs: list[str]) -> None:
    file = conflict_file("f", "content", "".join(ours), "".join(theirs), "".join(base))
    resolution = Resolution([file], ("main", "task-1"))
    snapshots = []
    for _ in range(data.draw(st.integers(0, 6))):
        snapshots.append(dict(resolution.choices))
        key = data.draw(st.sampled_from(resolution.keys))
        resolution.choose([key], data.draw(st.sampled_from([OURS, THEIRS, BOTH] if file.textual else [OURS, THEIRS])))
    while snapshots:
        resolution.undo()
        assert resolution.choices == snapshots.pop()
    assert resolution.undo() is None


def test_an_unchosen_hunk_is_refused() -> None:
    file = conflict_file("f.txt", "content", "X\n", "Y\n", "b\n")
    with pytest.raises(ValueError, match="no choice"):
        Resolution([file], ("main", "t")).result(0)


def test_a_hunk_is_shown_at_its_line_in_the_merged_file_whatever_was_chosen_above_it() -> None:
    ours = edit(edit(BASE, 10, "ours 10\n"), 1600, "ours 1600\n")
    theirs = edit(edit(BASE, 10, "theirs 10\n"), 1600, "theirs 1600\n")
    resolution = Resolution([conflict_file("f.txt", "content", ours, theirs, BASE)], ("master", "task-1"))
    assert [resolution.display_line(key) for key in resolution.keys] == [10, 1600]
    assert resolution.line_of((0, 1)) == 1606  # in the editor, the open hunk above takes its markers' lines
    resolution.choose([(0, 0)], BOTH)
    assert resolution.display_line((0, 1)) == 1601
    assert resolution.line_of((0, 1)) == 1601


def test_windows_line_endings_split_and_resolve_like_any_other() -> None:
    file = conflict_file("f.txt", "content", "a\r\nX\r\nz\r\n", "a\r\nY\r\nz\r\n", "a\r\nb\r\nz\r\n")
    assert file.hunk_count == 1
    resolution = Resolution([file], ("main", "task-1"))
    resolution.choose([(0, 0)], BOTH)
    assert resolution.result(0) == ("text", "a\r\nX\r\nY\r\nz\r\n")
