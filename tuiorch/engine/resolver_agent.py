"""A conflict handed to an agent: main merged into the task's branch in a workspace, the resolver agent
run there through the runner, its merge judged (`ConflictResolver.verdict`) and landed, or undone.

The git side (conflicted files for the prompt, the verdict, undoing a failed attempt) is
`tuiorch.steps.resolution`'s; this room applies it to the run.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from tuiorch import events as ev
from tuiorch.agent_feed import AgentFeed
from tuiorch.agent_output import make_output_parser
from tuiorch.config import output_format, worktree_dir
from tuiorch.engine.agent_io import AgentIO
from tuiorch.engine.hub import CommandError, Hub
from tuiorch.engine.landings import Landings
from tuiorch.git import GitError
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import IN_CONFLICT, TaskStatus
from tuiorch.runners.base import AgentHandle, AgentSpec, StartFailed
from tuiorch.steps.resolution import AttemptOutcome as ResolverOutcome
from tuiorch.steps.resolution import AttemptStart, attempt_notice, gave_up_reason, resolution_message
from tuiorch.verdict import failure_reason, succeeded


class ResolverAgent:
    def __init__(self, hub: Hub, agent_io: AgentIO, landings: Landings) -> None:
        self.hub = hub
        self.agent_io = agent_io
        self.landings = landings

    def resolve_path(self, rec: TaskRecord) -> Path:
        """Where the task's conflict is resolved (by the agent or by hand)."""
        return worktree_dir(self.hub.config, self.hub.root, rec.task.id) / f"resolve-{rec.task.id}"

    def message(self, rec: TaskRecord) -> str:
        """The message of the merge commit that resolves the task's conflict."""
        assert rec.branch is not None
        hub = self.hub
        return resolution_message(
            hub.brief.commit_message(rec.task), hub.base, rec.branch, sorted(rec.kinds) or rec.paths
        )

    async def hand_to_agent(self, task_id: str) -> None:
        """The conflict modal's `g`: the resolver agent gets a fresh set of attempts.

        For a failed check, the task's agent gets its branch back with the check's output in its prompt.
        """
        hub = self.hub
        rec = hub._record(task_id)
        if rec.status is TaskStatus.CHECK_FAILED:
            rec.keep_commits = True
            rec.attempts = 0
            hub._requeue_front(rec)
            return
        if rec.status not in IN_CONFLICT:
            raise CommandError(f"task {task_id} is not in conflict")
        if task_id in hub._runners:
            raise CommandError(f"task {task_id} is busy")
        if rec.status is TaskStatus.RESOLVING and rec.worktree is not None:
            await hub.resolver.remove_worktree(rec.worktree)
            rec.worktree = None
            hub._transition(rec, TaskStatus.CONFLICT)
        rec.resolve_attempts = 0
        self.landings.spawn(rec, "resolve", self.resolve)

    async def resolve(self, rec: TaskRecord) -> None:
        """Hand a conflict to the configured agent: main merged into the task's worktree, markers and all.

        Done when the agent exits 0, no markers remain and the merge is committed; then the merge into
        main is retried. Past [merge] resolve_attempts the task stays `conflict` for a human.
        """
        hub, task = self.hub, rec.task
        assert rec.branch is not None
        path = self.resolve_path(rec)
        limit = hub.config.merge.resolve_attempts
        while rec.status is TaskStatus.CONFLICT and rec.resolve_attempts < limit:
            rec.resolve_attempts += 1
            hub._emit(ev.Notice(message=attempt_notice(task.id, rec.resolve_attempts, limit)))
            before = await hub.resolver.branch_tip(rec.branch)
            outcome = await self._one_attempt(rec, path)
            await hub.resolver.drop_worktree(path)
            rec.worktree = None
            if outcome.resolved:
                await self.landings.merge(rec, apply_policy=False)
                continue
            # What a failed attempt committed (a merge with markers left in) must never reach main.
            outcome = await hub.resolver.undo_attempt(rec.branch, before, outcome)
            rec.reason = outcome.reason
            hub._emit(ev.Notice(message=f"task {task.id}: the resolver agent failed: {outcome.failure}", level="warning"))
            conflict = ev.ConflictFound(task=task.id, paths=rec.paths, kinds=dict(rec.kinds))
            hub._transition(rec, TaskStatus.CONFLICT, conflict)
        if rec.status is TaskStatus.CONFLICT and rec.resolve_attempts >= limit:
            rec.reason = gave_up_reason(rec.paths)
            hub._persist()
            hub._emit(ev.QueueChanged())

    async def _one_attempt(self, rec: TaskRecord, path: Path) -> ResolverOutcome:
        """Run the resolver agent once; resolved when the branch now holds a marker-free merge of the base
        tip the agent was given (main may have moved on since: the usual merge takes it from there).

        When nothing conflicts any more (main moved since the merge stopped), no agent is started.
        """
        hub, task = self.hub, rec.task
        assert rec.branch is not None
        message = self.message(rec)
        parser = make_output_parser(output_format(hub.config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        feed = self.agent_io.feed(rec, parser)
        spec = AgentSpec(
            task_id=task.id,
            kind="resolve",
            attempt=rec.resolve_attempts,
            slot=rec.slot or 0,
            branch=rec.branch,
            base=hub.base,
            keep_commits=True,
            command=hub.brief.resolve_command(rec, functools.partial(hub.resolver.conflict_files, rec.branch)),
            log_path=hub.logs / f"{task.id}.log",
            env=hub.brief.env(rec),
            timeout=hub.config.agent.timeout or None,
            merge_message=message,
        )
        try:
            handle = await hub.agent_runner.start(spec, self.agent_io.hooks(rec, feed))
        except StartFailed as exc:
            return ResolverOutcome(False, exc.reason)
        rec.worktree = Path(handle.workspace)
        rec.where, rec.confined = handle.where, handle.confined
        try:
            if not handle.conflicted:
                return ResolverOutcome(True)  # main moved and nothing conflicts now: no agent needed
            return await self._run(rec, handle, feed, message)
        finally:
            with contextlib.suppress(GitError, OSError):
                await handle.release()

    async def _run(self, rec: TaskRecord, handle: AgentHandle, feed: AgentFeed, message: str) -> ResolverOutcome:
        assert rec.branch is not None
        hub = self.hub
        hub._transition(rec, TaskStatus.RESOLVING)
        hub._agents[rec.task.id] = handle
        try:
            exit_ = await handle.wait()
        finally:
            hub._agents.pop(rec.task.id, None)
            rec.pgid = None
            rec.attachment = None
            feed.finish()
            self.agent_io.flush()
            rec.activity = ""
        hub._transition(rec, TaskStatus.CONFLICT)  # the agent is done: the outcome is judged from here
        if not succeeded(exit_, feed.parser):
            return ResolverOutcome(False, failure_reason(exit_, feed.parser, list(rec.stderr_tail), hub.preset))
        try:
            collected = await handle.collect(message, failed=False)
        except GitError as exc:
            return ResolverOutcome(False, str(exc))
        # For a resolver the handle's base is the base tip merged in: the agent's merge must hold it.
        start = AttemptStart(handle.conflicted, handle.base_sha or None)
        return await hub.resolver.verdict(rec.branch, start, collected.markers)
