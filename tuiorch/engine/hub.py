"""What the orchestrator's rooms may use of it, and the error its commands raise.

The rooms (`tuiorch.engine.*`) never import the orchestrator: they are handed this surface. A task's
status changes only through `Hub._transition` (the orchestrator's), which saves and emits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tuiorch import events as ev
    from tuiorch.agent_command import AgentBrief
    from tuiorch.config import Config, Preset
    from tuiorch.git import GitRepo
    from tuiorch.model.record import TaskRecord
    from tuiorch.model.status import TaskStatus
    from tuiorch.queue import RunQueue
    from tuiorch.runners.base import AgentHandle, Runner
    from tuiorch.steps.landing import Lander
    from tuiorch.steps.predictor import ConflictPredictor
    from tuiorch.steps.resolution import ConflictResolver


class CommandError(Exception):
    """A UI command that does not apply to the task in its current state."""


class Hub(Protocol):
    """The orchestrator as its rooms see it."""

    root: Path
    config: Config
    git: GitRepo
    queue: RunQueue
    logs: Path
    workers: int
    paused: bool
    #: Which task holds each slot of the pool (None: free).
    slots: list[str | None]
    #: The task each slot was given last, kept after it leaves the slot.
    last_in_slot: dict[int, str]
    preset: Preset
    brief: AgentBrief
    agent_runner: Runner
    lander: Lander
    predictor: ConflictPredictor
    resolver: ConflictResolver
    #: The asyncio task at work on each task that has one: its attempt, its merge or its resolution.
    _runners: dict[str, asyncio.Task[None]]
    #: The running agent of each task that has one (cancel and stop reach it here).
    _agents: dict[str, AgentHandle]
    _stopping: bool
    #: Set to make the pool loop look again (a slot freed, a task queued, main moved).
    _wake: asyncio.Event
    #: Base's tip when the run began (the summary lists what landed since).
    _base_at_start: str | None

    @property
    def base(self) -> str: ...

    @property
    def records(self) -> dict[str, TaskRecord]: ...

    def _transition(
        self, rec: TaskRecord, status: TaskStatus, event: ev.Event | None = None, *, restoring: bool = False
    ) -> None:
        """The only writer of a task's status: check the move, save, then emit."""
        ...

    def _emit(self, event: ev.Event) -> None: ...

    def _persist(self, *, finished: bool = False) -> None: ...

    def _requeue_front(self, rec: TaskRecord) -> None:
        """Queue the task again, first in line."""
        ...

    async def requeue(self, task_id: str) -> None:
        """Drop the task's branch and redo it from the new main (the user's command, also a policy's)."""
        ...

    async def _resolve_with_agent(self, rec: TaskRecord) -> None:
        """Hand the task's conflict to the resolver agent (a policy's choice, or the user's `g`)."""
        ...

    def _record(self, task_id: str) -> TaskRecord:
        """The task's record, or CommandError naming the unknown id."""
        ...
