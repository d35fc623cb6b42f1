"""The user's hands on one task's work: a conflict triaged in the conflict modal (take a side, edit by
hand, hunk by hunk), then merged; and the task's diff for the review screen."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from tuiorch import events as ev
from tuiorch.config import branch_name
from tuiorch.diffs import TaskDiff
from tuiorch.engine.hub import CommandError, Hub
from tuiorch.engine.landings import Landings
from tuiorch.engine.resolver_agent import ResolverAgent
from tuiorch.git import DIFF_MAX_LINES, GitError
from tuiorch.hunks import Resolution
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import IN_CONFLICT, IN_SLOT, TaskStatus
from tuiorch.steps.resolution import ResolutionError, Side


class Triage:
    def __init__(self, hub: Hub, landings: Landings, resolver_agent: ResolverAgent) -> None:
        self.hub = hub
        self.landings = landings
        self.resolver_agent = resolver_agent

    def conflict_sides(self, task_id: str, path: str) -> tuple[str | None, str | None, str | None]:
        rec = self.hub._record(task_id)
        assert rec.branch is not None
        return self.hub.resolver.sides(rec.branch, path)

    def _in_conflict(self, task_id: str) -> TaskRecord:
        rec = self.hub._record(task_id)
        if rec.status not in IN_CONFLICT or rec.branch is None:
            raise CommandError(f"task {task_id} is not in conflict")
        return rec

    def _resolving(self, task_id: str) -> tuple[TaskRecord, Path]:
        rec = self.hub._record(task_id)
        if rec.status is not TaskStatus.RESOLVING or rec.worktree is None:
            raise CommandError(f"task {task_id} has no resolution in progress")
        return rec, rec.worktree

    async def prepare_manual(self, task_id: str) -> Path:
        """A worktree on the task branch with main merged in, conflict markers and all."""
        rec = self._in_conflict(task_id)
        path = self.resolver_agent.resolve_path(rec)
        if rec.status is TaskStatus.CONFLICT or rec.worktree != path:
            assert rec.branch is not None
            await self.hub.resolver.prepare_manual(path, rec.branch)
            rec.worktree = path
            self.hub._transition(rec, TaskStatus.RESOLVING)
        return path

    async def take_side(self, task_id: str, path: str, side: Side) -> None:
        rec = self.hub._record(task_id)
        worktree = await self.prepare_manual(task_id)
        await self.hub.resolver.take_side(worktree, path, side)
        rec.paths = tuple(p for p in rec.paths if p != path)
        self.hub._emit(ev.QueueChanged())

    async def mark_resolved(self, task_id: str, path: str) -> None:
        """A path edited by hand (the modal's `e`) is accepted once its markers are gone."""
        rec, worktree = self._resolving(task_id)
        await self.hub.resolver.mark_resolved(worktree, path)
        rec.paths = tuple(p for p in rec.paths if p != path)
        self.hub._emit(ev.QueueChanged())

    async def finish_resolution(self, task_id: str) -> None:
        rec, worktree = self._resolving(task_id)
        await self.hub.resolver.finish(worktree, self.resolver_agent.message(rec))
        rec.worktree = None
        await self.landings.merge(rec)

    async def conflict_resolution(self, task_id: str) -> Resolution:
        """The task's conflict as hunks to choose from, pinned to the two tips it was computed from."""
        rec = self._in_conflict(task_id)
        assert rec.branch is not None
        try:
            return await self.hub.resolver.hunks(rec.branch, rec.paths)
        except ResolutionError as exc:
            raise CommandError(str(exc)) from None

    async def resolve_conflict(self, task_id: str, resolution: Resolution) -> None:
        """Commit a hunk-by-hunk resolution on the task branch as the merge of exactly the tips it was made
        from, then retry the merge into base (which may conflict again if base moved since)."""
        rec = self._in_conflict(task_id)
        assert rec.branch is not None
        if task_id in self.hub._runners:
            raise CommandError(f"task {task_id} is busy")
        resolver = self.hub.resolver
        try:
            await resolver.check_pinned(rec.branch, resolution)
            path = self.resolver_agent.resolve_path(rec)
            if rec.worktree is not None and rec.status is TaskStatus.RESOLVING:
                await resolver.remove_worktree(rec.worktree)
            conflicted = await resolver.begin_hunk_merge(path, rec.branch, resolution)
            rec.worktree = path
            self.hub._transition(rec, TaskStatus.RESOLVING)
            await resolver.apply_hunks(path, resolution, conflicted)
        except ResolutionError as exc:
            raise CommandError(str(exc)) from None
        await self.finish_resolution(task_id)

    async def task_diff(self, task_id: str, *, max_lines: int = DIFF_MAX_LINES) -> TaskDiff:
        """What the task changed against its merge base: the merge commit once merged, the agent's worktree
        (uncommitted work too) while it runs, else its branch."""
        hub = self.hub
        rec = hub._record(task_id)
        branch = rec.branch or branch_name(hub.config, rec.task.id, hub.root.name)
        diff = functools.partial(hub.git.task_diff, hub.base, max_lines=max_lines)
        if rec.status is TaskStatus.MERGED and rec.commit:
            return await asyncio.to_thread(diff, commit=rec.commit)
        if rec.status in IN_SLOT and rec.holds_worktree and rec.worktree is not None:
            with contextlib.suppress(GitError):
                return await asyncio.to_thread(diff, worktree=rec.worktree)
        if await asyncio.to_thread(hub.git.branch_tip, branch):
            return await asyncio.to_thread(diff, branch=branch)
        return TaskDiff(base=hub.base, source="nothing yet: the task has no branch")
