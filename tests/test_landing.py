"""The landing step alone, with a scripted git: its retry policy, the merge lock, and the policies.

The real-git suites (test_gate, test_main_green, test_faults) cover the same step end to end; a fake
git here makes the races exact (base moves on every round, two landings at once).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tuiorch.gate import CheckResult
from tuiorch.gitops import MergeOutcome, PreparedMerge
from tuiorch.steps.landing import (
    Lander,
    LandingHooks,
    LandingOutcome,
    LandingRequest,
    RetryPolicy,
    check_failed_action,
    conflict_action,
)

PREPARED = PreparedMerge(
    branch="task-1",
    base="main",
    commit="c" * 40,
    base_tip="b" * 40,
    branch_tip="t" * 40,
    tree="e" * 40,
    paths=("a.txt",),
    message="m",
)
MOVED = MergeOutcome("moved", None, message="main moved from bbbbbbb to ddddddd since the merge was prepared")


class ScriptedGit:
    """Answers merge, prepare_merge and land_merge from scripts, and records every call in order."""

    def __init__(self, prepares: list[Any], lands: list[MergeOutcome], merges: list[MergeOutcome] = ()) -> None:
        self.prepares = prepares
        self.lands = lands
        self.merges = list(merges)
        self.calls: list[str] = []

    def merge(self, branch: str, base: str, message: str) -> MergeOutcome:
        self.calls.append(f"merge {branch}")
        return self.merges.pop(0)

    def checkout_detached(self, path: Path, commit: str, keep: tuple[str, ...]) -> None:
        self.calls.append(f"checkout {commit[:1]}")

    def prepare_merge(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        self.calls.append(f"prepare {branch}")
        return self.prepares.pop(0)

    def land_merge(self, prepared: PreparedMerge) -> MergeOutcome:
        self.calls.append(f"land {prepared.commit[:1]}")
        return self.lands.pop(0)


def land(git: ScriptedGit, request: LandingRequest, **policy: Any) -> LandingOutcome:
    return asyncio.run(Lander(git, RetryPolicy(**policy)).land(request))  # type: ignore[arg-type]


def checked(tmp_path: Path, **fields: Any) -> LandingRequest:
    """A request gated by a check that always passes (a real process, in tmp_path)."""
    return LandingRequest("task-1", "main", "m", check=("true",), scratch=tmp_path, log_path=tmp_path / "t.log", **fields)


def test_base_moving_under_every_checked_commit_ends_blocked_after_the_policys_rounds(tmp_path: Path) -> None:
    git = ScriptedGit([PREPARED] * 3, [MOVED] * 3)
    outcome = land(git, checked(tmp_path), moved_rounds=3)
    assert outcome.kind == "blocked" and "main kept moving" in outcome.reason and "3 tries" in outcome.reason
    assert outcome.checks_run == 3
    assert git.calls == ["prepare task-1", "checkout c", "land c"] * 3
    assert (tmp_path / "t.log").read_text().count("since the merge was prepared") == 3
    assert outcome.prepared == PREPARED  # it passed: landed as is next time, unless base moved again


def test_without_a_check_the_git_layer_lands_in_one_call() -> None:
    git = ScriptedGit([], [], [MergeOutcome("merged", "m" * 40)])
    outcome = land(git, LandingRequest("task-1", "main", "m"))
    assert outcome == LandingOutcome("merged", commit="m" * 40)
    assert git.calls == ["merge task-1"]


def test_a_checked_commit_is_landed_again_without_preparing_a_new_one() -> None:
    git = ScriptedGit([], [MergeOutcome("merged", PREPARED.commit)])
    outcome = land(git, LandingRequest("task-1", "main", "m", check=("true",), checked=PREPARED))
    assert outcome == LandingOutcome("merged", commit=PREPARED.commit)
    assert git.calls == ["land c"]


def test_a_checked_commit_still_blocked_is_handed_back_for_the_next_try() -> None:
    blocked = MergeOutcome("blocked", None, ("a.txt",), message="uncommitted changes in a.txt")
    git = ScriptedGit([], [blocked])
    outcome = land(git, LandingRequest("task-1", "main", "m", check=("true",), checked=PREPARED))
    assert outcome.kind == "blocked" and outcome.prepared == PREPARED and outcome.paths == ("a.txt",)
    assert outcome.reason == "uncommitted changes in a.txt"


def test_a_checked_commit_whose_base_moved_is_made_and_checked_again(tmp_path: Path) -> None:
    fresh = replace(PREPARED, commit="f" * 40)
    git = ScriptedGit([fresh], [MOVED, MergeOutcome("merged", fresh.commit)])
    outcome = land(git, checked(tmp_path, checked=PREPARED))
    assert outcome.kind == "merged" and outcome.commit == fresh.commit and outcome.checks_run == 1
    assert git.calls == ["land c", "prepare task-1", "checkout f", "land f"]


def test_already_merged_counts_as_merged_and_a_conflict_keeps_its_paths() -> None:
    already = land(ScriptedGit([], [], [MergeOutcome("already", "a" * 40)]), LandingRequest("t", "main", "m"))
    assert already.kind == "merged" and already.commit == "a" * 40 and already.reason == ""
    conflict = MergeOutcome("conflict", None, ("x.py", "y.py"), {"x.py": "both modified", "y.py": "both added"})
    outcome = land(ScriptedGit([], [], [conflict]), LandingRequest("t", "main", "m"))
    assert outcome.kind == "conflict" and outcome.paths == ("x.py", "y.py")
    assert dict(outcome.kinds) == {"x.py": "both modified", "y.py": "both added"}
    assert outcome.reason == "conflict in x.py, y.py"


def test_two_landings_at_once_run_one_after_the_other() -> None:
    class SlowGit(ScriptedGit):
        def merge(self, branch: str, base: str, message: str) -> MergeOutcome:
            self.calls.append(f"merge {branch} starts")
            time.sleep(0.05)  # long enough for the other landing to start, were it not locked out
            self.calls.append(f"merge {branch} ends")
            return MergeOutcome("merged", "m" * 40)

    git = SlowGit([], [])
    lander = Lander(git)  # type: ignore[arg-type]
    locked: list[str] = []

    async def both() -> list[LandingOutcome]:
        return await asyncio.gather(
            *(
                lander.land(LandingRequest(b, "main", "m"), LandingHooks(on_locked=lambda b=b: locked.append(b)))
                for b in ("task-1", "task-2")
            )
        )

    outcomes = asyncio.run(both())
    assert [o.kind for o in outcomes] == ["merged", "merged"]
    assert locked == ["task-1", "task-2"]
    assert git.calls == ["merge task-1 starts", "merge task-1 ends", "merge task-2 starts", "merge task-2 ends"]


def test_the_reason_a_failed_check_shows() -> None:
    failed = LandingOutcome("check_failed", check=CheckResult(False, 2, "boom", reason="exit 2"))
    assert failed.reason == "check failed: exit 2"
    silent = LandingOutcome("check_failed", check=CheckResult(False, 3, "", reason=""))
    assert silent.reason == "check failed: exit 3"


@pytest.mark.parametrize(
    ("on_conflict", "requeues", "action"),
    [
        ("requeue", 0, "requeue"),
        ("requeue", 1, "stay"),  # requeued once already: a second conflict waits for the user
        ("agent", 0, "agent"),
        ("agent", 5, "agent"),  # the resolver's own attempt limit applies, not the requeue count
        ("ask", 0, "stay"),
    ],
)
def test_conflict_policy(on_conflict: str, requeues: int, action: str) -> None:
    assert conflict_action(on_conflict, requeues) == action


@pytest.mark.parametrize(
    ("on_check_fail", "requeues", "fixes", "action"),
    [
        ("requeue", 0, 0, "requeue"),
        ("requeue", 1, 0, "stay"),
        ("agent", 0, 0, "agent"),
        ("agent", 0, 2, "agent"),
        ("agent", 0, 3, "stay"),  # the agent had its fixes (limit 3 here): over to the user
        ("ask", 0, 0, "stay"),
    ],
)
def test_check_failed_policy(on_check_fail: str, requeues: int, fixes: int, action: str) -> None:
    assert check_failed_action(on_check_fail, requeues, fixes, 3) == action
