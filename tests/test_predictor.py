"""The conflict predictor alone, with a scripted git: what it tests, what it skips, what it reports.

tests/test_conflicts.py and tests/test_ui_gate.py cover predictions end to end with real repos.
"""

from __future__ import annotations

import asyncio

from tuiorch.gitops import GitError
from tuiorch.steps.predictor import ConflictPredictor, Prediction, RunningBranch


class ScriptedGit:
    """Branch tips and test-merge answers from dicts; counts the test merges."""

    def __init__(self, base_tip: str, tips: dict[str, str | None], conflicts: dict[str, tuple[str, ...]]) -> None:
        self.base_tip = base_tip
        self.tips = tips
        self.conflicts = conflicts
        self.tested: list[str] = []

    def tip(self, base: str) -> str:
        return self.base_tip

    def branch_tip(self, branch: str) -> str | None:
        if branch not in self.tips:
            raise GitError(f"no branch {branch}")
        return self.tips[branch]

    def test_merge(self, branch: str, base: str) -> tuple[str, ...]:
        self.tested.append(branch)
        return self.conflicts.get(branch, ())


def predict(predictor: ConflictPredictor, *running: RunningBranch) -> list[Prediction]:
    return asyncio.run(predictor.predict(running))


def test_a_conflict_is_reported_once_and_not_retested_while_nothing_moves() -> None:
    git = ScriptedGit("b1", {"task-1": "t1"}, {"task-1": ("a.py",)})
    predictor = ConflictPredictor(git, "main")  # type: ignore[arg-type]
    one = RunningBranch("1", "task-1", base_sha="b0")
    assert predict(predictor, one) == [Prediction("1", ("a.py",))]
    assert predict(predictor, RunningBranch("1", "task-1", "b0", predicted=("a.py",))) == []
    assert git.tested == ["task-1"]


def test_base_moving_retests_and_a_resolved_conflict_is_reported_cleared() -> None:
    git = ScriptedGit("b1", {"task-1": "t1"}, {"task-1": ("a.py",)})
    predictor = ConflictPredictor(git, "main")  # type: ignore[arg-type]
    predict(predictor, RunningBranch("1", "task-1", "b0"))
    git.base_tip, git.conflicts = "b2", {}
    assert predict(predictor, RunningBranch("1", "task-1", "b0", ("a.py",))) == [Prediction("1", ())]
    assert git.tested == ["task-1", "task-1"]


def test_a_branch_without_commits_of_its_own_is_not_tested() -> None:
    git = ScriptedGit("b1", {"task-1": "b0", "task-2": None}, {})
    predictor = ConflictPredictor(git, "main")  # type: ignore[arg-type]
    assert predict(predictor, RunningBranch("1", "task-1", "b0"), RunningBranch("2", "task-2", "b0")) == []
    assert git.tested == []


def test_a_vanished_branch_ends_the_round_keeping_what_was_found_before_it() -> None:
    git = ScriptedGit("b1", {"task-1": "t1"}, {"task-1": ("a.py",)})
    predictor = ConflictPredictor(git, "main")  # type: ignore[arg-type]
    found = predict(predictor, RunningBranch("1", "task-1", "b0"), RunningBranch("2", "gone", "b0"))
    assert found == [Prediction("1", ("a.py",))]


def test_with_nothing_running_it_forgets_what_it_tested() -> None:
    git = ScriptedGit("b1", {"task-1": "t1"}, {"task-1": ("a.py",)})
    predictor = ConflictPredictor(git, "main")  # type: ignore[arg-type]
    predict(predictor, RunningBranch("1", "task-1", "b0"))
    assert predict(predictor) == []
    # The same task id running again (a requeue) is tested afresh.
    assert predict(predictor, RunningBranch("1", "task-1", "b0")) == [Prediction("1", ("a.py",))]
    assert git.tested == ["task-1", "task-1"]
