"""Picking up where an earlier run left off: its queue restored, its dead agents ended, its tasks
reconciled with what git holds (the rules are `tuiorch.steps.recovery`'s; this applies them)."""

from __future__ import annotations

import functools
from pathlib import Path

from tuiorch import events as ev
from tuiorch import state
from tuiorch.config import branch_name, worktree_dir
from tuiorch.engine.hub import Hub
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import TaskStatus
from tuiorch.runners.base import Attachment
from tuiorch.state import StateError, load_state
from tuiorch.steps.recovery import (
    MarkMerged,
    Reattach,
    RecoveryAction,
    Requeue,
    ResumeMerge,
    SavedTask,
    TaskRecovery,
    end_dead_run,
    recover,
    still_running,
)


class SavedRun:
    """The earlier run's saved state, applied to this run's queue."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        #: The earlier run's saved state, when it was on the same base.
        self.saved: dict | None = None
        #: Why the saved state could not be read (told once the run starts).
        self.notice: str | None = None
        #: Finished tasks whose merge the dead run had not done: the loop starts them.
        self.merges: list[TaskRecord] = []
        #: Tasks whose agent the dead run left running where the runner can take it up (by task id).
        self.running: dict[str, Attachment] = {}

    def restore(self) -> None:
        """Keep the user's queue order, holds and priorities; remember the rest for `reconcile`."""
        hub = self.hub
        try:
            saved = load_state(hub.git.git_dir)
        except StateError as exc:
            self.notice = f"{exc}; starting without the saved queue order"
            return
        if not saved or saved.get("base") != hub.base:
            return
        self.saved = saved
        for rec in state.restore(hub.queue, saved):
            rec.log_path = self._existing_log(rec.task.id)
            hub._transition(rec, TaskStatus.MERGED, restoring=True)

    def _existing_log(self, task_id: str) -> Path | None:
        """The log an earlier run wrote for the task, if any (`l` shows it for a carried-over task)."""
        path = self.hub.logs / f"{task_id}.log"
        return path if path.is_file() else None

    async def clean_up_after_dead_run(self) -> None:
        """The last run died: end its agents, then drop the git locks only it could have held."""
        saved = self.saved
        if saved is None or saved.get("finished"):
            return
        # The runner ends the agents where they run (a cluster runner brings what they did into their
        # branches first), except those it can take up again; then the git locks only the dead run
        # could have held are dropped.
        hub = self.hub
        self.running = await still_running(self._saved_tasks(saved), hub.agent_runner.running)
        spare = [attachment.ref for attachment in self.running.values()]
        ends = functools.partial(hub.agent_runner.end_orphans, spare=spare)
        for notice in await end_dead_run(hub.git.git_dir, hub.base, saved.get("tasks", {}), end_orphans=ends):
            hub._emit(ev.Notice(message=notice.message, level=notice.level))

    def _saved_tasks(self, saved: dict) -> list[SavedTask]:
        hub = self.hub
        return [
            SavedTask.from_state(
                task_id, data, branch=branch_name(hub.config, task_id, hub.root.name), title=rec.task.title
            )
            for task_id, data in saved.get("tasks", {}).items()
            if (rec := hub.records.get(task_id)) is not None
        ]

    async def reconcile(self) -> None:
        """Pick up where a dead or finished run left off (the rules are `tuiorch.steps.recovery`'s)."""
        hub, saved = self.hub, self.saved
        if not saved:
            return
        if not saved.get("finished") and saved.get("base_at_start"):
            hub._base_at_start = saved["base_at_start"]
        ends = functools.partial(self._end_saved_agent, saved.get("tasks", {}))
        worktrees = worktree_dir(hub.config, hub.root)
        recovering = recover(
            hub.git, self._saved_tasks(saved), base=hub.base, worktrees=worktrees, end_agent=ends, running=self.running
        )
        async for recovery in recovering:
            self._apply(recovery)
        hub._persist()
        hub._emit(ev.QueueChanged())

    async def _end_saved_agent(self, saved_tasks: dict, saved: SavedTask) -> str | None:
        """End a dead run's agent through the runner, from what the run state saved about it."""
        return await self.hub.agent_runner.clean_up(Attachment.from_state(saved_tasks.get(saved.task_id, {})))

    def _apply(self, recovery: TaskRecovery) -> None:
        hub = self.hub
        for notice in recovery.notices:
            hub._emit(ev.Notice(message=notice))
        saved = recovery.saved
        if saved.merged:
            return
        rec = hub.records[saved.task_id]
        rec.log_path = self._existing_log(saved.task_id)
        rec.branch = saved.branch
        rec.base_sha = saved.base_sha
        rec.requeues = saved.requeues
        rec.attempts = saved.attempts
        for action in recovery.actions:
            self._act(rec, action)

    def _act(self, rec: TaskRecord, action: RecoveryAction) -> None:
        hub = self.hub
        match action:
            case MarkMerged(commit=commit):
                rec.commit = commit
                rec.reason = "merged before tuiorch stopped"
                hub._transition(rec, TaskStatus.MERGED, ev.Merged(task=rec.task.id, commit=commit), restoring=True)
            case ResumeMerge(tip=tip):
                hub._transition(rec, TaskStatus.FINISHED, restoring=True)
                rec.tip = tip
                self.merges.append(rec)
            case Reattach(attachment=attachment, attempts=attempts):
                hub._transition(rec, TaskStatus.QUEUED, restoring=True)
                rec.reason, rec.keep_commits, rec.attempts = "", True, attempts
                rec.resume = attachment
                hub.queue.to_front(rec.task.id)
            case Requeue(front=front, keep_commits=keep_commits, attempts=attempts):
                hub._transition(rec, TaskStatus.QUEUED, restoring=True)
                rec.reason = ""
                rec.keep_commits = rec.keep_commits or keep_commits
                rec.attempts = attempts
                if front:
                    hub.queue.to_front(rec.task.id)
