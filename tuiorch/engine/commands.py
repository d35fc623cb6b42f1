"""The user's commands on the pool and the queue: pool size, pause, cancel, retry, order, priority,
hold, new and reloaded tasks, send back, requeue, the word to merge; and why one does not apply.

Which command applies in which status is `tuiorch.model.status.COMMANDS`; `refusal` adds what depends
on the run (the configuration), and every command here raises its words.
"""

from __future__ import annotations

import asyncio
import functools

from tuiorch import events as ev
from tuiorch.engine.hub import CommandError, Hub
from tuiorch.engine.landings import Landings
from tuiorch.engine.persistence import Persistence
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import COMMANDS, TaskStatus, command_refusal
from tuiorch.queue import QueueError
from tuiorch.tasks import Priority, Task


class Commands:
    def __init__(self, hub: Hub, landings: Landings, persistence: Persistence) -> None:
        self.hub = hub
        self.landings = landings
        self.persistence = persistence

    # ------------------------------------------------------------------ the pool

    def set_workers(self, n: int) -> None:
        hub = self.hub
        n = max(1, n)
        hub.workers = n
        while len(hub.slots) < n:
            hub.slots.append(None)
        while len(hub.slots) > n and hub.slots[-1] is None:
            hub.slots.pop()
        hub._emit(ev.PoolChanged(workers=n, paused=hub.paused))
        hub._wake.set()

    def pause(self) -> None:
        self.hub.paused = True
        self.hub._emit(ev.PoolChanged(workers=self.hub.workers, paused=True))

    def resume(self) -> None:
        self.hub.paused = False
        self.hub._emit(ev.PoolChanged(workers=self.hub.workers, paused=False))
        self.hub._wake.set()

    # ------------------------------------------------------------------ one task

    def refusal(self, command: str, task_id: str | None) -> str | None:
        """Why `command` does not apply to `task_id` right now, in the user's words, or None if it does.

        The one place these rules live: the commands raise these words, and a front end asks before
        offering a key. `command` is a key of `tuiorch.model.status.COMMANDS`.
        """
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        if task_id is None:
            return "no task selected"
        rec = self.hub.records.get(task_id)
        if rec is None:
            return f"no task {task_id!r}"
        if (why := command_refusal(command, task_id, rec.status)) is not None:
            return why
        if command == "merge" and self.hub.config.merge.auto:
            return "finished tasks merge by themselves ([merge] auto = true)"
        return None

    def _refuse(self, command: str, task_id: str) -> TaskRecord:
        """The task's record, or CommandError with refusal()'s words."""
        if (why := self.refusal(command, task_id)) is not None:
            raise CommandError(why)
        return self.hub.records[task_id]

    def approve_merge(self, task_id: str) -> None:
        """With [merge] auto = false: the user's word to merge a finished task."""
        rec = self.hub._record(task_id)
        if rec.status is not TaskStatus.FINISHED:
            raise CommandError(self.refusal("merge", task_id) or f"task {task_id} is not waiting to be merged")
        self.landings.start_merge(rec)

    def cancel(self, task_id: str) -> None:
        self._refuse("cancel", task_id)
        agent = self.hub._agents.get(task_id)
        if agent is not None:
            agent.cancel()
        elif (runner := self.hub._runners.get(task_id)) is not None:
            runner.cancel()

    def retry(self, task_id: str) -> None:
        """Start a stopped task again; its branch keeps what earlier attempts committed, and the agent
        continues from there (the work of a cancelled or timed-out attempt is never thrown away)."""
        rec = self._refuse("retry", task_id)
        if rec.status is TaskStatus.CHECK_FAILED:
            self.landings.start_merge(rec)  # main may have moved, or the check was flaky
            return
        rec.attempts = 0
        rec.keep_commits = True
        rec.continued = rec.reason or rec.status.value
        self.hub._requeue_front(rec)

    def send_back(self, task_id: str, note: str) -> None:
        """Review's `g`: the task's agent gets its branch back, with the user's note in its prompt."""
        rec = self.hub._record(task_id)
        if rec.status not in COMMANDS["review"]:
            raise CommandError(
                f"task {task_id} is {rec.status.value}; only a finished task (or a failed check) goes back to its agent"
            )
        if task_id in self.hub._runners:
            raise CommandError(f"task {task_id} is busy")
        if not note.strip():
            raise CommandError("write a note saying what the agent should change")
        rec.review_note = note.strip()
        rec.keep_commits = True
        rec.attempts = 0
        rec.reason = "sent back to its agent with your note"
        self.hub._requeue_front(rec)

    async def requeue(self, task_id: str) -> None:
        """Abort: drop branch and worktree, redo the task from the new main, at the head of the queue."""
        hub = self.hub
        rec = self._refuse("requeue", task_id)
        if rec.status is TaskStatus.RESOLVING and rec.worktree is not None:
            await asyncio.to_thread(hub.git.remove_worktree, rec.worktree)
        if rec.branch:
            await asyncio.to_thread(functools.partial(hub.git.delete_branch, rec.branch, force=True, base=hub.base))
        rec.requeues += 1
        rec.attempts = 0
        rec.paths = ()
        rec.reason = "requeued after conflict"
        rec.worktree = None
        hub._requeue_front(rec)

    # ------------------------------------------------------------------ the queue

    def move(self, task_id: str, delta: int) -> None:
        """Move a queued task up (delta < 0) or down past `abs(delta)` other queued tasks."""
        self._refuse("move", task_id)
        if self.hub.queue.move(task_id, delta):
            self._queue_changed()

    def move_top(self, task_id: str) -> Priority:
        """Make a queued task the next to start: first in the queue, and raised to the best priority tier
        among the queued tasks (the scheduler starts by tier first). Returns its priority now."""
        self._refuse("move", task_id)
        priority = self.hub.queue.move_top(task_id)
        self._queue_changed()
        return priority

    def set_priority(self, task_id: str, priority: Priority) -> None:
        self._refuse("priority", task_id)
        self.hub.queue.set_priority(task_id, priority)
        self._queue_changed()

    def toggle_hold(self, task_id: str) -> None:
        self._refuse("hold", task_id)
        self.hub.queue.toggle_hold(task_id)
        self._queue_changed()

    def add_task(self, task: Task) -> None:
        try:
            self.hub.queue.add(task)
        except QueueError as exc:
            raise CommandError(str(exc)) from None
        self._queue_changed()

    def reload_tasks(self, tasks: list[Task]) -> None:
        """Apply an edited task file: queued tasks change, new ones join, removed queued ones leave."""
        self.hub.queue.reload(tasks)
        self._queue_changed()

    def _queue_changed(self) -> None:
        self.persistence.save_soon()
        self.hub._emit(ev.QueueChanged())
        self.hub._wake.set()
