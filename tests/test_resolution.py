"""The resolution step alone: how a resolver attempt is judged, with a scripted git, and its messages.

tests/test_conflicts.py runs the resolver agent end to end on real repos; tests/test_ui_app.py and
tests/test_ui_review.py drive the conflict modal's manual resolution.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tuiorch.gitops import GitError
from tuiorch.hunks import Resolution, conflict_file
from tuiorch.steps.resolution import (
    AttemptOutcome,
    AttemptStart,
    ConflictResolver,
    ResolutionError,
    gave_up_reason,
    resolution_message,
)


class ScriptedGit:
    """What the agent left behind, as git would report it; records what tuiorch did about it."""

    def __init__(
        self,
        *,
        left_in_files: tuple[str, ...] = (),
        committed_with_markers: tuple[str, ...] = (),
        holds_merge: bool = True,
        undo_error: str | None = None,
    ) -> None:
        self.left_in_files = left_in_files
        self.committed_with_markers = committed_with_markers
        self.holds_merge = holds_merge
        self.undo_error = undo_error
        self.calls: list[str] = []

    def committed_markers(self, branch: str, paths: Any) -> list[str]:
        return [p for p in paths if p in self.committed_with_markers]

    def branch_contains(self, branch: str, commit: str) -> bool:
        return self.holds_merge

    def undo_branch(self, branch: str, tip: str) -> None:
        self.calls.append(f"undo to {tip}")
        if self.undo_error:
            raise GitError(self.undo_error)

    def branch_tip(self, branch: str) -> str:
        return "t" * 40


START = AttemptStart(conflicted=("a.py", "b.py"), given="g" * 40)


def judge(git: ScriptedGit, start: AttemptStart = START) -> AttemptOutcome:
    """The verdict on what the runner collected (the files it found still marked: `left_in_files`)."""
    resolver = ConflictResolver(git, "main")  # type: ignore[arg-type]
    in_files = [p for p in start.conflicted if p in git.left_in_files]
    return asyncio.run(resolver.verdict("task-1", start, in_files))


def test_a_clean_resolution_is_accepted() -> None:
    assert judge(ScriptedGit()) == AttemptOutcome(True)


def test_markers_left_in_a_file_fail_the_attempt_naming_it() -> None:
    outcome = judge(ScriptedGit(left_in_files=("b.py",)))
    assert outcome == AttemptOutcome(False, "conflict markers remain in b.py")


def test_markers_the_agent_committed_fail_the_attempt() -> None:
    # The agent committed the merge itself, markers and all: the workspace looks clean.
    outcome = judge(ScriptedGit(committed_with_markers=("a.py",)))
    assert outcome == AttemptOutcome(False, "conflict markers remain in a.py")
    assert outcome.reason == "resolver agent: conflict markers remain in a.py"


def test_an_agent_that_threw_the_merge_away_fails_the_attempt() -> None:
    assert judge(ScriptedGit(holds_merge=False)).failure == "the agent did not commit the merge of main"


def test_with_no_merge_given_only_the_markers_count() -> None:
    assert judge(ScriptedGit(holds_merge=False), AttemptStart(conflicted=("a.py",), given=None)).resolved


def test_a_failed_attempt_is_undone_and_an_undo_that_fails_says_where_the_commits_stay() -> None:
    failed = AttemptOutcome(False, "exit 1")
    git = ScriptedGit()
    resolver = ConflictResolver(git, "main")  # type: ignore[arg-type]
    assert asyncio.run(resolver.undo_attempt("task-1", "b" * 40, failed)) == failed
    assert git.calls == [f"undo to {'b' * 40}"]
    assert asyncio.run(resolver.undo_attempt("task-1", None, failed)) == failed  # no branch before: nothing to undo
    stuck = ConflictResolver(ScriptedGit(undo_error="ref locked"), "main")  # type: ignore[arg-type]
    outcome = asyncio.run(stuck.undo_attempt("task-1", "b" * 40, failed))
    assert outcome.failure == "exit 1; its commits stay on task-1 (ref locked)"


def test_an_unfinished_or_outdated_hunk_resolution_is_refused() -> None:
    resolver = ConflictResolver(ScriptedGit(), "main")  # type: ignore[arg-type]
    one_hunk = conflict_file("a.py", "both modified", "x\n", "y\n", "o\n", binary=False)
    unfinished = Resolution([one_hunk], ("main", "task-1"), base_tip="b" * 40, task_tip="t" * 40)
    with pytest.raises(ResolutionError, match="^1 hunks still need a choice$"):
        asyncio.run(resolver.check_pinned("task-1", unfinished))
    done_but_old = Resolution([], ("main", "task-1"), base_tip="b" * 40, task_tip="old")
    with pytest.raises(ResolutionError, match="^branch task-1 moved since the conflict was shown; open it again$"):
        asyncio.run(resolver.check_pinned("task-1", done_but_old))
    asyncio.run(resolver.check_pinned("task-1", Resolution([], ("main", "task-1"), "b" * 40, "t" * 40)))


def test_the_resolution_commit_message_keeps_the_tasks_subject_and_trailers() -> None:
    message = resolution_message("feat: x\n\nCo-authored-by: A <a@x>\n", "main", "task-1", ["a.py", "b.py"])
    assert message == (
        "feat: x\n\nMerge main into task-1; conflicts resolved in a.py, b.py.\n\nCo-authored-by: A <a@x>"
    )
    assert resolution_message("fix: y", "main", "task-2", []) == (
        "fix: y\n\nMerge main into task-2; conflicts resolved in no path."
    )
    assert gave_up_reason(["a.py"]) == "conflict in a.py; the agent could not resolve it, over to you"
