"""The crash-recovery decision table on plain data: a saved task entry and git's facts in, actions out.

The real resumes (a killed run, real git, real agents) are in test_faults.py and test_state.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tuiorch.runners.base import Attachment
from tuiorch.steps.recovery import (
    BranchFacts,
    DeleteBranch,
    DropMergedBranch,
    MarkMerged,
    Reattach,
    Requeue,
    ResumeMerge,
    SavedTask,
    plan_reattach,
    plan_recovery,
    recover,
    still_running,
)

BASE_SHA = "b" * 40
TIP = "c" * 40
MERGE = "d" * 40


def _saved(status: str, **fields: object) -> SavedTask:
    entry = {"status": status, "base_sha": BASE_SHA, "attempts": 2, **fields}
    return SavedTask.from_state("t1", entry, branch="tuiorch/t1", title="a task")


def test_the_saved_entry_is_read_with_defaults() -> None:
    saved = SavedTask.from_state(
        "t1",
        {"status": "running", "pgid": 4242, "worktree": "/w/slot-1", "requeues": 1},
        branch="tuiorch/t1",
        title="a task",
    )
    assert saved.branch == "tuiorch/t1" and not saved.branch_saved
    assert saved.worktree == Path("/w/slot-1")
    assert saved.agent_to_end == 4242 and saved.held_slot
    assert (saved.attempts, saved.requeues) == (0, 1)
    assert SavedTask.from_state("t1", {}, branch="x", title="").status == "queued"


@pytest.mark.parametrize(("status", "ends"), [("running", True), ("resolving", True), ("finished", False)])
def test_only_a_running_agent_is_ended(status: str, ends: bool) -> None:
    assert (_saved(status, pgid=7).agent_to_end == 7) is ends


def test_a_merged_task_only_loses_its_saved_branch() -> None:
    assert plan_recovery(_saved("merged", branch="tuiorch/t1"), None) == [DeleteBranch()]
    assert plan_recovery(_saved("merged"), None) == []


def test_a_gone_branch_whose_tip_was_merged_is_merged() -> None:
    assert plan_recovery(_saved("merging"), BranchFacts(tip=None, merge_commit=MERGE)) == [MarkMerged(MERGE)]


def test_a_gone_branch_never_merged_starts_over_in_its_place() -> None:
    assert plan_recovery(_saved("running"), BranchFacts(tip=None)) == [
        Requeue(front=False, keep_commits=False, attempts=2)
    ]


def test_a_branch_merged_just_before_the_crash_is_merged_and_cleaned_up() -> None:
    facts = BranchFacts(tip=TIP, merged=True, merge_commit=MERGE, worktree_kept=True)
    assert plan_recovery(_saved("merging"), facts) == [MarkMerged(MERGE), DropMergedBranch(release=True)]


def test_a_branch_that_never_got_past_the_old_base_starts_over() -> None:
    facts = BranchFacts(tip=BASE_SHA, merged=True)
    assert plan_recovery(_saved("running"), facts) == [
        DropMergedBranch(release=False),
        Requeue(front=True, keep_commits=False, attempts=2),
    ]
    assert plan_recovery(_saved("failed"), facts)[-1] == Requeue(front=False, keep_commits=False, attempts=0)


@pytest.mark.parametrize("status", ["finished", "merging", "checking", "merge_blocked", "conflict", "check_failed"])
def test_finished_work_is_merged_again(status: str) -> None:
    assert plan_recovery(_saved(status), BranchFacts(tip=TIP)) == [ResumeMerge(TIP)]


def test_interrupted_work_reruns_first_on_its_commits_without_using_a_retry() -> None:
    assert plan_recovery(_saved("running"), BranchFacts(tip=TIP)) == [
        Requeue(front=True, keep_commits=True, attempts=1)
    ]
    assert plan_recovery(_saved("stuck", attempts=0), BranchFacts(tip=TIP)) == [
        Requeue(front=True, keep_commits=True, attempts=0)
    ]


@pytest.mark.parametrize("status", ["failed", "cancelled", "empty"])
def test_stopped_work_with_commits_is_retried_afresh_in_its_place(status: str) -> None:
    assert plan_recovery(_saved(status), BranchFacts(tip=TIP)) == [
        Requeue(front=False, keep_commits=True, attempts=0)
    ]


def test_a_branch_with_nothing_new_is_deleted_and_the_task_starts_over() -> None:
    assert plan_recovery(_saved("starting"), BranchFacts(tip=BASE_SHA)) == [
        DeleteBranch(),
        Requeue(front=True, keep_commits=False, attempts=2),
    ]
    # A merge-phase task with no work left (nothing beyond where it started) is not merged: it starts over.
    assert plan_recovery(_saved("finished"), BranchFacts(tip=BASE_SHA)) == [
        DeleteBranch(),
        Requeue(front=False, keep_commits=False, attempts=2),
    ]


RAY_RUN = {"runner": "ray", "ref": "tuiorch-key-t1-task-2", "where": "node-b", "pgid": 77}


def test_an_agent_still_running_on_its_runner_is_reattached_not_judged() -> None:
    saved = _saved("running", **RAY_RUN)
    assert saved.may_reattach
    attachment = Attachment(runner="ray", where="node-b", pgid=77, ref="tuiorch-key-t1-task-2")
    assert saved.attachment == attachment
    assert plan_reattach(saved, attachment) == [Reattach(attachment, attempts=1)]
    # Gone by now: the usual table (its commits brought back, the task re-run on top of them).
    assert plan_recovery(saved, BranchFacts(tip=TIP)) == [Requeue(front=True, keep_commits=True, attempts=1)]


@pytest.mark.parametrize(
    ("status", "entry"),
    [
        ("running", {"pgid": 77}),  # a local agent: its runner names no run
        ("resolving", RAY_RUN),  # a resolver's run is ended, and the conflict resolved again
        ("finished", RAY_RUN),
    ],
)
def test_only_a_task_agent_of_a_runner_that_names_its_runs_may_be_reattached(status: str, entry: dict) -> None:
    assert not _saved(status, **entry).may_reattach


def test_the_executor_asks_the_runner_and_leaves_reattached_agents_alone() -> None:
    alive = _saved("running", **RAY_RUN)
    gone = SavedTask.from_state("t2", {**RAY_RUN, "status": "running", "ref": "gone"}, branch="b2", title="")
    asked: list[str] = []

    async def running(attachment: Attachment) -> bool:
        asked.append(attachment.ref)
        return attachment.ref != "gone"

    async def end_agent(saved: SavedTask) -> str | None:
        raise AssertionError("a re-attached agent is never ended")

    async def scenario() -> list:
        found = await still_running([alive, gone, _saved("queued")], running)
        assert list(found) == ["t1"] and asked == [RAY_RUN["ref"], "gone"]
        # No git is asked about a re-attached task: its agent still works on the branch.
        recovering = recover(None, [alive], base="main", worktrees=Path("/w"), end_agent=end_agent, running=found)  # type: ignore[arg-type]
        return [r async for r in recovering]

    (recovery,) = asyncio.run(scenario())
    assert recovery.actions == (Reattach(alive.attachment, attempts=1),)
    assert "node-b" in recovery.notices[0]
