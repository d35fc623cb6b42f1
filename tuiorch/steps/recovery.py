"""Picking up where a dead or finished run left off, trusting git over the saved state.

The rules, for each task the saved state knows:

- The dead run's agents are ended first, so nothing writes while their work is judged.
- A task saved as merged only loses its branch (the merge landed; the branch is a leftover).
- What a killed agent left uncommitted is work too: it is committed onto the branch (also when the
  agent made no commit yet). If it cannot be committed it stays, and the slot then refuses to be
  reused over it.
- A branch already in the base branch is never merged again. A merge commit of its tip means our
  merge landed just before the crash: the task is merged. Otherwise the branch never got past the
  base's old tip: the task starts over.
- A branch gone but whose saved tip was merged: merged too.
- Finished work (the agent was done, a merge was due) is merged again; interrupted work re-runs on
  top of its commits, at the head of the queue, without using up a retry.
- A branch with nothing beyond where it started is deleted and the task starts over.
- An agent its runner can still take up (a run on a cluster that outlived tuiorch) is neither ended
  nor judged: the task is re-attached to it, first in the queue, and goes on as if tuiorch had never
  stopped. Everything above applies to it only if it is gone by then.

`plan_recovery` is that table as a pure function of plain data (`SavedTask`, `BranchFacts`).
`recover` is the executor: it ends agents, commits leftovers, asks git, and carries out the plan's
git actions. It never changes run state: the orchestrator applies the outcome actions (`MarkMerged`,
`Requeue`, `ResumeMerge`, `Reattach`) to its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuiorch.git import GitError, GitRepo
from tuiorch.git.locks import clear_stale_git_locks
from tuiorch.model.status import IN_SLOT, MERGE_PHASE, TaskStatus
from tuiorch.procs import kill_orphan_agents, kill_stale_group
from tuiorch.runners.base import Attachment

#: Saved statuses (as strings) of a task whose agent held a slot when the run died.
_HELD_SLOT = frozenset(s.value for s in IN_SLOT)
#: ... or whose agent (a task's or a resolver) was running at all.
_AGENT_RAN = _HELD_SLOT | {TaskStatus.RESOLVING.value}
#: Saved statuses whose agent had finished: the branch only needs merging.
_MERGE_PHASE = frozenset(s.value for s in MERGE_PHASE)
#: Saved statuses whose merge may have held the base branch's ref lock when the run died.
_MERGING = frozenset(s.value for s in (TaskStatus.MERGING, TaskStatus.CHECKING, TaskStatus.FINISHED))
#: Saved statuses whose retries start from zero when the task is queued again.
_STOPPED = frozenset(s.value for s in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EMPTY))


@dataclass(frozen=True)
class SavedTask:
    """One task's entry in the saved run state, typed."""

    task_id: str
    #: The status it had, as saved ("running", "merging" ...).
    status: str
    #: The task's branch: the saved one, else the name the run gives it.
    branch: str
    #: The branch was saved (a task saved as merged without one has nothing to clean up).
    branch_saved: bool = False
    #: The task's title, for the commit of what its agent left uncommitted.
    title: str = ""
    #: The worktree its agent worked in.
    worktree: Path | None = None
    #: The commit of base its last attempt started from.
    base_sha: str | None = None
    #: The branch tip when its agent finished (finds the merge commit when the branch is gone).
    tip: str | None = None
    #: Process group of its agent.
    pgid: int | None = None
    attempts: int = 0
    requeues: int = 0
    #: What the run state saved about its agent, for its runner to find it again.
    attachment: Attachment | None = None

    @classmethod
    def from_state(cls, task_id: str, data: Mapping[str, Any], *, branch: str, title: str) -> SavedTask:
        """From the saved state's entry `data`; `branch` names the task's branch when none was saved."""
        return cls(
            task_id=task_id,
            status=str(data.get("status", TaskStatus.QUEUED.value)),
            branch=data.get("branch") or branch,
            branch_saved=bool(data.get("branch")),
            title=title,
            worktree=Path(data["worktree"]) if data.get("worktree") else None,
            base_sha=data.get("base_sha"),
            tip=data.get("tip"),
            pgid=int(data["pgid"]) if data.get("pgid") else None,
            attempts=int(data.get("attempts", 0)),
            requeues=int(data.get("requeues", 0)),
            attachment=Attachment.from_state(data),
        )

    @property
    def merged(self) -> bool:
        return self.status == TaskStatus.MERGED.value

    @property
    def held_slot(self) -> bool:
        return self.status in _HELD_SLOT

    @property
    def may_reattach(self) -> bool:
        """Its task's agent held a slot and was started by a runner that names its runs."""
        return self.held_slot and self.attachment is not None and bool(self.attachment.ref)

    @property
    def agent_to_end(self) -> int | None:
        """The process group to end: its agent was running when the run died."""
        return self.pgid if self.status in _AGENT_RAN else None


@dataclass(frozen=True)
class BranchFacts:
    """What git says about a task's branch once the dead agent's leftovers were committed."""

    #: The branch tip now; None when the branch is gone.
    tip: str | None
    #: The branch is in the base branch.
    merged: bool = False
    #: The base's merge commit of the tip (of the saved tip when the branch is gone), if any.
    merge_commit: str | None = None
    #: The agent's old worktree still exists (and still holds the branch).
    worktree_kept: bool = False


# ---------------------------------------------------------------------- actions


@dataclass(frozen=True)
class DeleteBranch:
    """Delete the task's branch (it holds nothing beyond the base)."""


@dataclass(frozen=True)
class DropMergedBranch:
    """Release the old worktree (if `release`), then delete the branch already in the base."""

    release: bool


@dataclass(frozen=True)
class MarkMerged:
    """Outcome: the task is merged, by `commit`, before the run stopped."""

    commit: str


@dataclass(frozen=True)
class Requeue:
    """Outcome: the task waits in the queue again."""

    #: At the head of the queue (its agent was interrupted, not done).
    front: bool
    #: The branch holds work the next attempt builds on.
    keep_commits: bool
    #: Attempts it has used up.
    attempts: int


@dataclass(frozen=True)
class ResumeMerge:
    """Outcome: finished work at `tip` that only needs merging."""

    tip: str


@dataclass(frozen=True)
class Reattach:
    """Outcome: the task's agent still runs where it ran; the task takes it up again, first in the queue."""

    attachment: Attachment
    #: Attempts used before the one that goes on (the re-attached run counts as the same attempt).
    attempts: int


RecoveryAction = DeleteBranch | DropMergedBranch | MarkMerged | Requeue | ResumeMerge | Reattach


# ---------------------------------------------------------------------- the decision table


def plan_recovery(saved: SavedTask, facts: BranchFacts | None) -> list[RecoveryAction]:
    """What to do with one task, from its saved entry and git's facts (None for a task saved as merged,
    whose branch git is not asked about)."""
    if facts is None or saved.merged:
        return [DeleteBranch()] if saved.merged and saved.branch_saved else []
    if facts.tip is None:
        return [MarkMerged(facts.merge_commit)] if facts.merge_commit else [_requeue(saved, front=False)]
    if facts.merged:
        return _plan_in_base(saved, facts)
    return _plan_unmerged(saved, facts.tip)


def _plan_in_base(saved: SavedTask, facts: BranchFacts) -> list[RecoveryAction]:
    """The branch is in the base already: merged by us just before the crash, or never past the old base."""
    if facts.merge_commit:
        return [MarkMerged(facts.merge_commit), DropMergedBranch(release=facts.worktree_kept)]
    return [DropMergedBranch(release=facts.worktree_kept), _requeue(saved, front=saved.held_slot)]


def _plan_unmerged(saved: SavedTask, tip: str) -> list[RecoveryAction]:
    if tip == saved.base_sha:
        return [DeleteBranch(), _requeue(saved, front=saved.held_slot)]
    if saved.status in _MERGE_PHASE:
        return [ResumeMerge(tip)]
    # The crash does not use up a retry of an interrupted agent; an earlier failure starts afresh.
    attempts = max(0, saved.attempts - 1) if saved.held_slot else 0
    return [_requeue(saved, front=saved.held_slot, keep_commits=True, attempts=attempts)]


def plan_reattach(saved: SavedTask, attachment: Attachment) -> list[RecoveryAction]:
    """A task whose agent still runs where its runner can take it up (`still_running`): its branch is
    not judged, the same attempt goes on."""
    return [Reattach(attachment, attempts=max(0, saved.attempts - 1))]


def _requeue(saved: SavedTask, *, front: bool, keep_commits: bool = False, attempts: int | None = None) -> Requeue:
    used = saved.attempts if attempts is None else attempts
    return Requeue(front=front, keep_commits=keep_commits, attempts=0 if saved.status in _STOPPED else used)


# ---------------------------------------------------------------------- the executor


@dataclass(frozen=True)
class TaskRecovery:
    """One task picked up: its saved entry, the plan carried out, and what to tell the user."""

    saved: SavedTask
    actions: tuple[RecoveryAction, ...]
    notices: tuple[str, ...] = field(default=())


async def recover(
    git: GitRepo,
    tasks: Iterable[SavedTask],
    *,
    base: str,
    worktrees: Path,
    end_agent: Callable[[SavedTask], Awaitable[str | None]] | None = None,
    running: Mapping[str, Attachment] | None = None,
) -> AsyncIterator[TaskRecovery]:
    """Carry out each task's plan in git, yielding it as soon as it is done (the caller applies its outcome).

    `end_agent` ends a task's agent where it runs (the run's runner) and says what it ended; without it,
    the saved process group is ended on this machine if it still works under `worktrees`. The tasks
    named in `running` (see `still_running`) keep their agents: they are re-attached."""
    for saved in tasks:
        attachment = (running or {}).get(saved.task_id)
        if attachment is not None:
            notice = f"task {saved.task_id}: re-attached to its agent still running on {attachment.where}"
            yield TaskRecovery(saved=saved, actions=tuple(plan_reattach(saved, attachment)), notices=(notice,))
            continue
        notices = await _end_agent(saved, worktrees, end_agent)
        facts = None if saved.merged else await _probe(git, saved, base)
        actions = plan_recovery(saved, facts)
        for action in actions:
            await _carry_out(git, saved, action, base)
        yield TaskRecovery(saved=saved, actions=tuple(actions), notices=notices)


async def _end_agent(
    saved: SavedTask, worktrees: Path, end_agent: Callable[[SavedTask], Awaitable[str | None]] | None
) -> tuple[str, ...]:
    """End the dead run's agent of `saved`, if it was running; what to tell the user."""
    pgid = saved.agent_to_end
    if not pgid:
        return ()
    if end_agent is not None:
        ended = await end_agent(saved)
        return (f"task {saved.task_id}: {ended}",) if ended else ()
    if kill_stale_group(pgid, worktrees):
        return (f"task {saved.task_id}: ended agent process group {pgid} of the dead run",)
    return ()


async def _probe(git: GitRepo, saved: SavedTask, base: str) -> BranchFacts:
    """Commit what the dead agent left, then ask git where the branch stands."""
    tip = await asyncio.to_thread(git.branch_tip, saved.branch)
    if tip is None:
        merge = None
        if saved.tip and saved.status in _MERGE_PHASE:
            merge = await asyncio.to_thread(git.find_merge_of, saved.tip, base)
        return BranchFacts(tip=None, merge_commit=merge)
    worktree_kept = saved.worktree is not None and saved.worktree.exists()
    message = f"wip: {saved.title} (left uncommitted when tuiorch stopped)"
    if worktree_kept and saved.held_slot:
        with contextlib.suppress(GitError):
            await asyncio.to_thread(git.commit_leftovers, saved.worktree, message, saved.branch)
        tip = await asyncio.to_thread(git.branch_tip, saved.branch)
    if await asyncio.to_thread(git.is_merged, saved.branch, base):
        merge = await asyncio.to_thread(git.find_merge_of, tip, base)
        return BranchFacts(tip=tip, merged=True, merge_commit=merge, worktree_kept=worktree_kept)
    if worktree_kept:
        with contextlib.suppress(GitError):
            await asyncio.to_thread(git.commit_leftovers, saved.worktree, message)
            await asyncio.to_thread(git.release_worktree, saved.worktree)
    tip = await asyncio.to_thread(git.branch_tip, saved.branch)
    return BranchFacts(tip=tip, worktree_kept=worktree_kept)


async def _carry_out(git: GitRepo, saved: SavedTask, action: RecoveryAction, base: str) -> None:
    """The git side of `action`; outcomes are the caller's. A refusal leaves the branch for `tuiorch clean`."""
    with contextlib.suppress(GitError):
        match action:
            case DeleteBranch():
                await asyncio.to_thread(functools.partial(git.delete_branch, saved.branch, base=base))
            case DropMergedBranch(release=release):
                if release and saved.worktree is not None:
                    await asyncio.to_thread(git.release_worktree, saved.worktree)
                await asyncio.to_thread(functools.partial(git.delete_branch, saved.branch, base=base))


async def still_running(
    tasks: Iterable[SavedTask], running: Callable[[Attachment], Awaitable[bool]]
) -> dict[str, Attachment]:
    """The tasks whose agent the runner can take up again (asked before anything of the dead run is
    ended), by task id."""
    found = {}
    for saved in tasks:
        if saved.may_reattach and saved.attachment is not None and await running(saved.attachment):
            found[saved.task_id] = saved.attachment
    return found


@dataclass(frozen=True)
class Notice:
    """Something the user should hear about the cleanup."""

    message: str
    level: str = "info"


async def end_dead_run(
    git_dir: Path,
    base: str,
    saved_tasks: Mapping[str, Mapping[str, Any]],
    *,
    end_orphans: Callable[[], Awaitable[list[str]]] | None = None,
) -> list[Notice]:
    """The last run died: end its agents, then drop the git locks only it could have held.

    `end_orphans` ends the agents where they run (the run's runner: on this machine or a cluster) and
    says what it ended; without it, the agent process groups on this machine are ended."""
    if end_orphans is not None:
        notices = [Notice(line) for line in await end_orphans()]
    else:
        notices = [
            Notice(f"ended agent process group {pgid} left by the tuiorch run that stopped")
            for pgid in await asyncio.to_thread(kill_orphan_agents, git_dir)
        ]
    await asyncio.sleep(0.1)  # let the killed agents go before their locks are judged
    was_merging = any(entry.get("status") in _MERGING for entry in saved_tasks.values())
    branches = [str(entry.get("branch") or "") for entry in saved_tasks.values()]
    stale = clear_stale_git_locks(git_dir, base, was_merging=was_merging, task_branches=branches)
    notices += [Notice(f"removed {lock}, left by the tuiorch run that stopped", level="warning") for lock in stale]
    return notices
