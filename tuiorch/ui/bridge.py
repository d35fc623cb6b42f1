"""The one place where engine events become Textual messages.

The orchestrator runs on Textual's own loop, so its sink is called there and may post directly.
Output lines are held here in a bounded buffer per task and announced with a coalescing message, so a
flood of output costs one message per task per frame, never one per line, and no line of the tail is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from textual.message import Message

from tuiorch.events import (
    ConflictCleared,
    ConflictFound,
    ConflictPredicted,
    Event,
    Notice,
    PoolChanged,
    QueueChanged,
    RunFinished,
    TaskEvent,
    TaskOutput,
    TaskProgress,
)
from tuiorch.ui import messages


class Bridge:
    def __init__(self, post: Callable[[Message], object], *, tail_lines: int = 500) -> None:
        self._post = post
        self._tail_lines = tail_lines
        self._pending: dict[str, deque[str]] = {}
        #: Lines that fell out of a full buffer before they were taken (they are in the log file).
        self._skipped: dict[str, int] = {}

    def take_output(self, task: str) -> list[str]:
        """The lines that arrived for `task` since the last call (at most `tail_lines`)."""
        pending = self._pending.pop(task, None)
        self._skipped.pop(task, None)
        return list(pending) if pending else []

    def take_output_counted(self, task: str) -> tuple[list[str], int]:
        """Like take_output, plus how many older lines since the last call did not fit the buffer."""
        skipped = self._skipped.pop(task, 0)
        return self.take_output(task), skipped

    def waiting_tasks(self) -> list[str]:
        return list(self._pending)

    def sink(self, event: Event) -> None:
        """The orchestrator's sink: translate one event and post it."""
        message = self.translate(event)
        if message is not None:
            self._post(message)

    def _buffer(self, task: str, lines: Sequence[str]) -> None:
        """Keep a task's newest output lines for its pane, counting those the buffer drops."""
        buffer = self._pending.setdefault(task, deque(maxlen=self._tail_lines))
        overflow = len(buffer) + len(lines) - self._tail_lines
        if overflow > 0:
            self._skipped[task] = self._skipped.get(task, 0) + overflow
        buffer.extend(lines)

    def translate(self, event: Event) -> Message | None:
        match event:
            case TaskOutput(task=task, lines=lines):
                self._buffer(task, lines)
                return messages.OutputReady(task)
            case TaskProgress(task=task):
                return messages.ProgressChanged(task)
            case ConflictFound(task=task, paths=paths, kinds=kinds):
                return messages.ConflictArrived(task, tuple(paths), dict(kinds))
            case ConflictPredicted(task=task) | ConflictCleared(task=task):
                return messages.TaskChanged(task, event.name)
            case PoolChanged(workers=workers, paused=paused):
                return messages.PoolUpdated(workers, paused)
            case QueueChanged():
                return messages.QueueUpdated()
            case Notice(message=text, level=level):
                return messages.NoticeArrived(text, level)
            case RunFinished(exit_code=code, merged=merged, failed=failed):
                return messages.RunEnded(code, merged, failed)
            case TaskEvent(task=task):
                return messages.TaskChanged(task, event.name)
        return None
