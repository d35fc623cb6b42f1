"""`RunQueue`: every task's record, the user's order, holds and priority overrides.

Pure bookkeeping: no I/O, no events, no status checks. The orchestrator decides whether a command
applies, calls one of these edits, then saves the run state and tells the front ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from tuiorch.model.record import TaskRecord
from tuiorch.model.status import ACTIVE, IN_SLOT, UNMERGED, TaskStatus
from tuiorch.scheduler import pick_tasks, wait_reasons
from tuiorch.tasks import Priority, Task


class QueueError(Exception):
    """A queue edit that cannot be made; str() says why in the user's words."""


@dataclass
class QueueRow:
    """One waiting task as the queue pane shows it."""

    task: Task
    status: TaskStatus
    held: bool
    #: Why it waits (a dependency, busy paths, a full pool, "paused"), or None when it starts next.
    reason: str | None


@dataclass(frozen=True)
class Standing:
    """What the scheduler weighs besides the queued tasks, read in one pass over the records."""

    #: Tasks whose branch is not in the base yet: the paths they touch are busy.
    unmerged: list[Task]
    merged: set[str]
    held: set[str]
    #: Paths a running branch is predicted to conflict on: queued tasks touching them wait.
    predicted: set[str]


class RunQueue:
    """The run's tasks in the user's order.

    `order` holds every task id, started or not; the queue the user edits is its QUEUED part, so
    moves count only queued tasks and a started task keeps its place for the summary.
    """

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self.records: dict[str, TaskRecord] = {}
        self.order: list[str] = []
        #: Bumped by every change a queue row or a wait reason may depend on (the view's cache key).
        self.version = 0
        self._view_cache: tuple[int, list[QueueRow]] | None = None
        for task in tasks:
            self._append(task)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def in_order(self) -> list[TaskRecord]:
        """Every record, in the user's order."""
        return [self.records[task_id] for task_id in self.order]

    def queued(self) -> list[Task]:
        """The tasks waiting to start, in the user's order."""
        records = self.records
        return [records[i].task for i in self.order if records[i].status is TaskStatus.QUEUED]

    def count_in(self, statuses: Collection[TaskStatus]) -> int:
        return sum(1 for rec in self.records.values() if rec.status in statuses)

    def has_active_work(self) -> bool:
        """An agent or a merge works on some task."""
        return any(rec.status in ACTIVE for rec in self.records.values())

    def standing(self) -> Standing:
        unmerged: list[Task] = []
        merged: set[str] = set()
        held: set[str] = set()
        predicted: set[str] = set()
        for task_id, rec in self.records.items():
            if rec.status in UNMERGED:
                unmerged.append(rec.task)
                if rec.status in IN_SLOT:
                    predicted.update(rec.predicted)
            elif rec.status is TaskStatus.MERGED:
                merged.add(task_id)
            if rec.held:
                held.add(task_id)
        return Standing(unmerged, merged, held, predicted)

    def pick(self, free_slots: int) -> list[Task]:
        """The queued tasks to start now in `free_slots` slots, in the order they start."""
        now = self.standing()
        return pick_tasks(self.queued(), now.unmerged, now.merged, free_slots, now.held, now.predicted)

    def view(self, *, free_slots: int, paused: bool) -> list[QueueRow]:
        """Every queued task with why it waits, cached until `version` moves (the owner bumps it on
        every change a row may depend on, the pool's size and pause included).

        The app asks many times a second, and with 10,000 queued tasks a fresh plan costs tens of
        milliseconds.
        """
        if self._view_cache is not None and self._view_cache[0] == self.version:
            return self._view_cache[1]
        rows = self._waiting_rows(free_slots, paused)
        self._view_cache = (self.version, rows)
        return rows

    def _waiting_rows(self, free_slots: int, paused: bool) -> list[QueueRow]:
        queued = self.queued()
        now = self.standing()
        reasons = wait_reasons(queued, now.unmerged, now.merged, free_slots, now.held, now.predicted)
        return [
            QueueRow(
                task=t,
                status=TaskStatus.QUEUED,
                held=t.id in now.held,
                reason=("paused" if paused and not reasons[t.id] else reasons[t.id]),
            )
            for t in queued
        ]

    # ------------------------------------------------------------------ edits

    def to_front(self, task_id: str) -> None:
        """Make `task_id` first in the order (a retried or requeued task goes next)."""
        self.order.remove(task_id)
        self.order.insert(0, task_id)

    def move(self, task_id: str, delta: int) -> bool:
        """Move a task up (delta < 0) or down past `abs(delta)` other queued tasks; False if it stays."""
        # Step through `order` from the task's place: a 10,000-task queue is not rebuilt per key press.
        pos = self.order.index(task_id)
        step = -1 if delta < 0 else 1
        target = pos
        remaining = abs(delta)
        i = pos + step
        while remaining and 0 <= i < len(self.order):
            if self.records[self.order[i]].status is TaskStatus.QUEUED:
                target = i
                remaining -= 1
            i += step
        if target == pos:
            return False
        del self.order[pos]
        self.order.insert(target, task_id)
        return True

    def move_top(self, task_id: str) -> Priority:
        """Make a task the next to start: first in the order, and raised to the best priority tier among
        the queued tasks (the scheduler starts by tier first). Returns its priority now."""
        rec = self.records[task_id]
        self.to_front(task_id)
        best = min((task.priority for task in self.queued()), default=rec.task.priority)
        if best < rec.task.priority:
            self.set_priority(task_id, best)
        return rec.task.priority

    def set_priority(self, task_id: str, priority: Priority) -> None:
        """The user's priority for the task; it wins over the task file's until changed again."""
        rec = self.records[task_id]
        rec.task = dataclasses.replace(rec.task, priority=priority)
        rec.priority_override = True

    def toggle_hold(self, task_id: str) -> bool:
        """Hold the task back, or release it; True when it is held now."""
        rec = self.records[task_id]
        rec.held = not rec.held
        return rec.held

    def add(self, task: Task) -> TaskRecord:
        """Queue a new task last; QueueError if its id is taken or it depends on a task the run lacks."""
        if task.id in self.records:
            raise QueueError(f"a task {task.id} exists already")
        unknown = [d for d in task.depends if d not in self.records]
        if unknown:
            raise QueueError(f"task {task.id} depends on unknown task {', '.join(unknown)}")
        return self._append(task)

    def reload(self, tasks: list[Task]) -> None:
        """Apply an edited task file: queued tasks change, new ones join, removed queued ones leave."""
        self._edit_queued({t.id: t for t in tasks})
        for task in tasks:
            if task.id not in self.records:
                self._append(task)

    def _edit_queued(self, fresh: dict[str, Task]) -> None:
        """Queued tasks take their edited version from `fresh`; those missing there leave the run."""
        for task_id in list(self.order):
            rec = self.records[task_id]
            if rec.status is not TaskStatus.QUEUED:
                continue
            if task_id in fresh:
                rec.task = _edited(rec, fresh[task_id])
            else:
                self.order.remove(task_id)
                del self.records[task_id]

    def restore_order(self, saved_order: Iterable[str]) -> None:
        """Put the saved order first (ids the run no longer has dropped); tasks new since keep theirs after."""
        known = [task_id for task_id in saved_order if task_id in self.records]
        known_set = set(known)
        self.order = known + [task_id for task_id in self.order if task_id not in known_set]

    def _append(self, task: Task) -> TaskRecord:
        rec = self.records[task.id] = TaskRecord(task=task)
        self.order.append(task.id)
        return rec


def _edited(rec: TaskRecord, edited: Task) -> Task:
    """A queued task's edited version; a priority set from the keyboard wins over the file until the user
    changes it again."""
    return dataclasses.replace(edited, priority=rec.task.priority) if rec.priority_override else edited
