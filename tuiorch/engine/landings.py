"""Landing finished branches: the landing stage's outcome applied to the run (merged, a conflict, a
failed check, blocked by the user's files) and the `[merge]` policies that follow a conflict or a
failed check. The landing itself (merge lock, check gate, compare-and-swap) is `tuiorch.steps.landing`'s.
"""

from __future__ import annotations

import asyncio
import functools
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

from tuiorch import events as ev
from tuiorch.agent_output import make_output_parser
from tuiorch.config import worktree_dir
from tuiorch.engine.agent_io import AgentIO
from tuiorch.engine.hub import CommandError, Hub
from tuiorch.engine.predictions import Predictions
from tuiorch.git import GitError, PreparedMerge
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import TaskStatus
from tuiorch.steps.landing import (
    LandingHooks,
    LandingOutcome,
    LandingRequest,
    check_failed_action,
    conflict_action,
)


class Landings:
    def __init__(self, hub: Hub, agent_io: AgentIO, predictions: Predictions) -> None:
        self.hub = hub
        self.agent_io = agent_io
        self.predictions = predictions

    def start_merge(self, rec: TaskRecord) -> None:
        """Merge the finished task outside the pool loop (the user's word, or a merge a dead run left)."""
        self.spawn(rec, "merge", self.merge)

    def spawn(self, rec: TaskRecord, kind: str, work: Callable[[TaskRecord], Awaitable[None]]) -> None:
        """Run merge or resolve work for a task outside the pool loop, as one of its runners.

        A git error ends it as the user would expect: a merge that cannot be done fails the task; a
        resolution that cannot be done leaves the conflict (and the branch) for the user.
        """
        hub = self.hub
        task_id = rec.task.id
        if task_id in hub._runners:
            raise CommandError(f"task {task_id} is busy")

        async def run() -> None:
            try:
                await work(rec)
            except GitError as exc:
                self._after_git_error(rec, kind, str(exc))
            finally:
                hub._runners.pop(task_id, None)
                hub._wake.set()

        hub._runners[task_id] = asyncio.create_task(run(), name=f"{kind}-{task_id}")

    def _after_git_error(self, rec: TaskRecord, kind: str, error: str) -> None:
        if self.merged_anyway(rec, error):
            return
        rec.reason = error
        task_id = rec.task.id
        if kind == "merge":
            self.hub._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=task_id, reason=error))
        else:
            conflict = ev.ConflictFound(task=task_id, paths=rec.paths, kinds=dict(rec.kinds))
            self.hub._transition(rec, TaskStatus.CONFLICT, conflict)

    def merged_anyway(self, rec: TaskRecord, error: str) -> bool:
        """A git error after the merge landed (its branch could not be deleted) does not undo the merge:
        the task stays merged and the user is told. True if that is the case."""
        if rec.status is not TaskStatus.MERGED:
            return False
        self.hub._emit(ev.Notice(message=f"task {rec.task.id} is merged, but then: {error}", level="warning"))
        return True

    async def merge(self, rec: TaskRecord, *, apply_policy: bool = True) -> None:
        """Land the task's branch on base; on conflict apply [merge] on_conflict (unless told not to)."""
        assert rec.branch is not None
        hub = self.hub
        was_blocked_on = rec.paths if rec.status is TaskStatus.BLOCKED else None
        request = self._request(rec, was_blocked_on)
        outcome = await hub.lander.land(request, self._hooks(rec, was_blocked_on))
        rec.prepared = outcome.prepared if outcome.kind == "blocked" else None
        if outcome.kind == "merged":
            await self._merged(rec, outcome)
        elif outcome.kind == "check_failed":
            await self._check_failed(rec, outcome)
            return
        elif outcome.kind == "conflict":
            await self._conflicted(rec, outcome, apply_policy=apply_policy)
        elif was_blocked_on == outcome.paths:
            return  # still blocked on the same files: nothing new to say
        else:
            rec.paths = outcome.paths
            rec.reason = outcome.reason
            blocked = ev.MergeBlocked(task=rec.task.id, paths=outcome.paths, reason=outcome.message)
            hub._transition(rec, TaskStatus.BLOCKED, blocked)
        hub._wake.set()

    def _request(self, rec: TaskRecord, was_blocked_on: tuple[str, ...] | None) -> LandingRequest:
        assert rec.branch is not None
        config = self.hub.config
        check = tuple(shlex.split(config.merge.check)) if config.merge.check else ()
        return LandingRequest(
            branch=rec.branch,
            base=self.hub.base,
            message=self.hub.brief.commit_message(rec.task),
            check=check,
            scratch=self.check_worktree(),
            log_path=self.hub.logs / f"{rec.task.id}.log",
            timeout=config.agent.timeout or None,
            keep=tuple(config.slots.keep),
            # This exact commit passed the check already; only the user's files stopped it.
            checked=rec.prepared if check and was_blocked_on is not None else None,
        )

    def check_worktree(self) -> Path:
        """The scratch worktree the merge check runs in."""
        return worktree_dir(self.hub.config, self.hub.root) / ".check"

    def _hooks(self, rec: TaskRecord, was_blocked_on: tuple[str, ...] | None) -> LandingHooks:
        hub, task_id = self.hub, rec.task.id

        def on_locked() -> None:
            if was_blocked_on is None:
                hub._transition(rec, TaskStatus.MERGING, ev.MergeStarted(task=task_id))

        def on_check(prepared: PreparedMerge) -> None:
            hub._transition(rec, TaskStatus.CHECKING, ev.CheckStarted(task=task_id, commit=prepared.commit))

        feed = self.agent_io.feed(rec, make_output_parser("text"))
        return LandingHooks(on_locked=on_locked, on_check=on_check, on_line=lambda line: feed.on_stdout([line]))

    async def _merged(self, rec: TaskRecord, outcome: LandingOutcome) -> None:
        assert rec.branch is not None
        hub = self.hub
        rec.commit = outcome.commit
        rec.paths = ()
        rec.reason = ""
        hub._transition(rec, TaskStatus.MERGED, ev.Merged(task=rec.task.id, commit=outcome.commit or ""))
        await asyncio.to_thread(functools.partial(hub.git.delete_branch, rec.branch, base=hub.base))
        # main moved: re-test running branches before the scheduler picks what to start next.
        await self.predictions.predict()

    async def _conflicted(self, rec: TaskRecord, outcome: LandingOutcome, *, apply_policy: bool) -> None:
        hub = self.hub
        rec.paths = outcome.paths
        rec.kinds = dict(outcome.kinds)
        rec.reason = outcome.reason
        conflict = ev.ConflictFound(task=rec.task.id, paths=outcome.paths, kinds=dict(outcome.kinds))
        hub._transition(rec, TaskStatus.CONFLICT, conflict)
        if not apply_policy:
            return
        action = conflict_action(hub.config.merge.on_conflict, rec.requeues)
        if action == "requeue":
            await hub.requeue(rec.task.id)
        elif action == "agent":
            await hub._resolve_with_agent(rec)

    async def _check_failed(self, rec: TaskRecord, outcome: LandingOutcome) -> None:
        hub, task = self.hub, rec.task
        check = outcome.check
        assert check is not None
        rec.reason = outcome.reason
        rec.check_output = check.output_tail
        failed = ev.CheckFailed(task=task.id, exit=check.exit, output=check.output_tail)
        hub._transition(rec, TaskStatus.CHECK_FAILED, failed)
        merge, retries = hub.config.merge, hub.config.agent.retries
        action = check_failed_action(merge.on_check_fail, rec.requeues, rec.check_fixes, retries + 1)
        if action == "requeue":
            await hub.requeue(task.id)
        elif action == "agent":
            # The agent gets its branch back with the failure in its prompt.
            rec.check_fixes += 1
            rec.keep_commits = True
            rec.attempts = 0
            hub._requeue_front(rec)
        hub._wake.set()

    async def retry_blocked(self) -> None:
        """Land again each merge the user's files blocked (they may have committed or stashed since)."""
        hub = self.hub
        for rec in list(hub.records.values()):
            if rec.status is TaskStatus.BLOCKED and not hub._stopping:
                await self.merge(rec)
                if rec.status is TaskStatus.MERGED:
                    hub._wake.set()
