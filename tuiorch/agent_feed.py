"""One agent run's output, parsed into its task record and the live events a front end shows.

The runner delivers the agent's lines in bursts; each burst is parsed at once into the pane's lines
(batched and emitted by the engine's flusher), the task's progress, what the agent is doing now, and
the tokens and cost it has used.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tuiorch import events as ev
from tuiorch.agent_output import OutputParser, ParsedLine, Progress
from tuiorch.model.record import TaskRecord


class AgentFeed:
    """Feeds one agent run's stdout and stderr bursts into `rec`.

    `show` takes the lines for the pane (the engine batches them into TaskOutput events); `emit`
    takes the progress and activity events; `alive` is told of every burst (a stuck agent is
    running again).
    """

    def __init__(
        self,
        rec: TaskRecord,
        parser: OutputParser,
        show: Callable[[list[str]], None],
        emit: Callable[[ev.Event], None],
        alive: Callable[[], None],
    ) -> None:
        self.rec = rec
        self.parser = parser
        self.show = show
        self.emit = emit
        self.alive = alive
        self._usage_before = rec.usage

    def on_stdout(self, lines: list[str]) -> None:
        self._take([self.parser.feed(line) for line in lines], len(lines))

    def on_stderr(self, lines: list[str]) -> None:
        self.rec.stderr_tail.extend(line for line in lines if line.strip())
        self._take([self.parser.feed_stderr(line) for line in lines], len(lines))

    def finish(self) -> None:
        """The run has ended: take what the parser held back."""
        self._take([self.parser.flush()], 0)

    def _take(self, parsed_lines: list[ParsedLine], count: int) -> None:
        rec = self.rec
        rec.last_output = time.time()
        rec.lines += count
        shown, progress, activity = _gather(parsed_lines)
        self.show(shown)
        if self.parser.usage is not None:
            before = self._usage_before
            rec.usage = self.parser.usage if before is None else before + self.parser.usage
        if progress is not None:
            # One progress event per burst: a flood of PROGRESS lines needs only the latest.
            rec.progress = p = progress
            self.emit(ev.TaskProgress(task=rec.task.id, percent=p.percent, done=p.done, total=p.total, text=p.text))
        if activity is not None and activity != rec.activity:
            rec.activity = activity
            self.emit(ev.TaskActivity(task=rec.task.id, activity=activity))
        self.alive()


def _gather(parsed_lines: list[ParsedLine]) -> tuple[list[str], Progress | None, str | None]:
    """A burst's lines for the pane, and its latest progress and activity."""
    shown: list[str] = []
    progress = None
    activity = None
    for parsed in parsed_lines:
        if parsed.display is not None:
            shown.extend(parsed.display.splitlines() if "\n" in parsed.display else (parsed.display,))
        progress = parsed.progress or progress
        activity = parsed.status or activity
    return shown, progress, activity
