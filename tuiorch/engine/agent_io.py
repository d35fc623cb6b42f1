"""A running agent's side of the run: its output batched into the panes, its hooks into its record.

The output of every agent (and of the merge check) is gathered here and emitted as one `TaskOutput`
per task every `OUTPUT_FLUSH_SECONDS`, so a flooding agent costs the front ends one event per tick.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

from tuiorch import events as ev
from tuiorch.agent_feed import AgentFeed
from tuiorch.agent_output import OutputParser
from tuiorch.engine.hub import Hub
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import TaskStatus
from tuiorch.runners.base import AgentHooks, Attachment

OUTPUT_FLUSH_SECONDS = 0.05


class AgentIO:
    """Agents' output into records and panes, and what a runner tells of an agent into its record."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._pending: dict[str, list[str]] = {}

    def feed(self, rec: TaskRecord, parser: OutputParser) -> AgentFeed:
        """The agent's output into the record and the pane; output from a stuck agent means it runs again."""
        return AgentFeed(
            rec, parser, functools.partial(self.show, rec.task.id), self.hub._emit, functools.partial(self.unstuck, rec)
        )

    def hooks(self, rec: TaskRecord, feed: AgentFeed, on_stuck: Callable[[float], None] | None = None) -> AgentHooks:
        """The runner's hooks for one agent run of `rec` (a task attempt watches for stuck, a resolver not)."""
        hooks = AgentHooks(
            on_lines=feed.on_stdout,
            on_stderr=feed.on_stderr,
            on_placed=functools.partial(self._placed, rec),
            on_started=functools.partial(self._started, rec),
            on_notice=self._notice,
            on_warning=self._warning,
        )
        if on_stuck is not None:
            hooks.on_stuck = on_stuck
            hooks.on_unstuck = functools.partial(self.unstuck, rec)
        return hooks

    def show(self, task_id: str, lines: list[str]) -> None:
        """Lines for the task's pane, emitted in batches by the flusher."""
        self._pending.setdefault(task_id, []).extend(lines)

    def unstuck(self, rec: TaskRecord) -> None:
        if rec.status is TaskStatus.STUCK:
            self.hub._transition(rec, TaskStatus.RUNNING)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for task_id, lines in pending.items():
            # The tail grows with what is emitted, never ahead of it: a pane that starts a task from its tail
            # and then appends each TaskOutput shows every line once.
            if (rec := self.hub.records.get(task_id)) is not None:
                rec.tail.extend(lines)
            self.hub._emit(ev.TaskOutput(task=task_id, lines=tuple(lines)))

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(OUTPUT_FLUSH_SECONDS)
            self.flush()

    def _placed(self, rec: TaskRecord, attachment: Attachment) -> None:
        # Saved with the next save: a run that dies while the workspace is prepared still finds it.
        rec.worktree = Path(attachment.workspace)

    def _started(self, rec: TaskRecord, attachment: Attachment) -> None:
        rec.pgid = attachment.pgid
        rec.attachment = attachment
        self.hub._persist()

    def _notice(self, message: str) -> None:
        self.hub._emit(ev.Notice(message=message))

    def _warning(self, message: str) -> None:
        self.hub._emit(ev.Notice(message=message, level="warning"))
