"""A pane per worker slot: task, status, what the agent is doing, progress, timings, tokens and cost,
predicted conflict and a live log tail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Log, ProgressBar

from tuiorch.events import TaskStatus
from tuiorch.ui.format import (
    ERROR,
    INFO,
    WARNING,
    activity_text,
    format_duration,
    progress_text,
    progress_values,
    status_label,
    task_note,
    usage_text,
)

#: Lines kept in a pane's tail; the full log is one key away (l). Also the most written per tick: a pane
#: shows a dozen lines, and every line written costs the UI loop time under a flood.
PANE_MAX_LINES = 200


class TailLog(Log):
    """A log tail that follows new lines until the user scrolls up, and again once they scroll back down.

    Log's own auto_scroll follows only while the view sits at the end when lines arrive; in a burst the
    end moves again before the view has caught up, and it stops following for good.
    """

    def __init__(self, *, max_lines: int) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=False)
        self.following = True

    def write_lines(self, lines, scroll_end: bool | None = None):  # noqa: ANN001, ANN201 - Log's signature
        super().write_lines(lines, scroll_end=False)
        if self.following if scroll_end is None else scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        return self

    def restart(self, lines: Sequence[str]) -> None:
        """Another task's tail: start over, following."""
        self.clear()
        self.following = True
        if lines:
            self.write_lines(list(lines))

    def on_mouse_scroll_up(self, _event: events.MouseScrollUp) -> None:
        self.following = False

    def on_mouse_scroll_down(self, _event: events.MouseScrollDown) -> None:
        self.call_after_refresh(self._follow_if_at_end)

    def on_mouse_up(self, _event: events.MouseUp) -> None:
        # The end of a drag on the scrollbar: follow again only if it was dragged to the bottom.
        self.call_after_refresh(self._follow_if_at_end)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.is_vertical_scrollbar_grabbed and new < old:
            self.following = False

    def _follow_if_at_end(self) -> None:
        self.following = self.scroll_offset.y >= self.max_scroll_y


class WorkerPane(Vertical, can_focus=True):
    """Shows one slot. The app calls `show(record, now)` and `write_output(lines, skipped)` on its tick."""

    DEFAULT_CSS = """
    WorkerPane {
        border: round $primary-darken-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        height: 1fr;
        padding: 0 1;
    }
    WorkerPane:focus { border: round $accent; }
    WorkerPane.-idle { border: round $panel-lighten-2; }
    WorkerPane.-stuck { border: round $warning; }
    WorkerPane .status { height: 1; width: 1fr; color: $text-muted; }
    WorkerPane ProgressBar { height: 1; }
    WorkerPane ProgressBar Bar { width: 1fr; }
    WorkerPane.-warning { border: round $warning; }
    WorkerPane.-error { border: round $error; }
    WorkerPane .note { height: 1; width: 1fr; }
    WorkerPane .note.-info { color: $text-accent; }
    WorkerPane .note.-warning { color: $text-warning; background: $warning-muted; text-style: bold; }
    WorkerPane .note.-error { color: $text-error; background: $error-muted; text-style: bold; }
    WorkerPane Log { height: 1fr; width: 1fr; background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; overflow-y: auto; }
    """

    def __init__(self, slot: int, *, max_lines: int = PANE_MAX_LINES) -> None:
        super().__init__(id=f"slot-{slot + 1}", classes="-idle")
        self.slot = slot
        self.task_id: str | None = None
        self._max_lines = max_lines
        self._shown: tuple[Any, ...] = ()
        #: Snapshot mode: agent output holds temp paths and shas, so the tail stays empty.
        self._redact = False
        self._ready = False
        self._note = ""
        self.border_title = f"slot {slot + 1} · idle"

    def compose(self) -> ComposeResult:
        yield Label("", classes="status", markup=False)
        yield ProgressBar(total=None, show_eta=False, show_percentage=True)
        yield Label("", classes="note", markup=False)
        log = TailLog(max_lines=self._max_lines)
        log.can_focus = False  # tab moves between panes, not into their logs
        yield log

    def on_mount(self) -> None:
        self._ready = True

    @property
    def _drawable(self) -> bool:
        """Mounted and not being removed (a pool resize adds and removes panes between ticks)."""
        return self._ready and self.is_attached

    def write_output(self, lines: Sequence[str], skipped: int = 0) -> None:
        """Append new output to the tail. `skipped` older lines never reached the pane: say so, so a flood
        never looks like a quiet agent, and point at the full log, which has every line."""
        if self._redact or not self._drawable or not (lines or skipped):
            return
        overflow = max(0, len(lines) - self._max_lines)
        skipped += overflow
        shown = list(lines[overflow:])
        if skipped:
            shown.insert(0, f"… {skipped:,} more lines (l: full log)")
        self.query_one(TailLog).write_lines(shown)

    def show(self, record: Any | None, now: float, *, redact: bool = False) -> None:
        """Render `record` (an orchestrator TaskRecord, or None for an idle slot) as of `now`.

        `redact` hides the timings and the log, which differ run to run (snapshot tests).
        """
        if not self._drawable:
            return  # just mounted (or being removed) by a pool resize; the next tick draws it
        self._redact = redact
        if record is None:
            self._show_idle()
            return
        self._follow(record, redact)
        status = TaskStatus(record.status)
        elapsed, quiet = (None, None) if redact else _timings(record, now)
        total, done = progress_values(record.progress, status)
        note, level = task_note(record)
        task = record.task
        state = (
            task.id,
            task.title,
            status,
            format_duration(elapsed),
            format_duration(quiet),
            total,
            done,
            progress_text(record.progress),
            note,
            level,
            record.attempts,
            activity_text(record),
            usage_text(record),
            record.confined,
            record.where,
        )
        if state == self._shown:
            return
        self._shown = state
        self._draw(record, status, elapsed, quiet, level)
        self.query_one(ProgressBar).update(total=total, progress=done)
        self._set_note(note, level)

    def _follow(self, record: Any, redact: bool) -> None:
        """A new task in this slot: start its tail from what the engine kept, not the previous task's."""
        if record.task.id != self.task_id:
            self.task_id = record.task.id
            self.query_one(TailLog).restart([] if redact else list(record.tail))

    def _draw(self, record: Any, status: TaskStatus, elapsed: float | None, quiet: float | None, level: str) -> None:
        """The pane's classes, borders and status line for `record`."""
        task = record.task
        self.set_class(False, "-idle")
        self.set_class(status is TaskStatus.STUCK, "-stuck")
        self.set_class(level == WARNING, "-warning")
        self.set_class(level == ERROR, "-error")
        self.border_title = f"slot {self.slot + 1} · {task.id} {task.title}"
        spent = usage_text(record)
        # The cost sits on the bottom border, where it fits even a narrow pane.
        self.border_subtitle = " · ".join(part for part in (spent, status_label(status)) if part)
        # A fixed-size line: no layout pass for what changes every second in every pane.
        self.query_one(".status", Label).update(status_line(record, status, elapsed, quiet), layout=False)

    def _show_idle(self) -> None:
        if self.task_id is None and self._shown:
            return  # idle already
        self.task_id = None
        self._shown = ("idle",)
        self.border_title = f"slot {self.slot + 1} · idle"
        self.border_subtitle = ""
        self.set_class(True, "-idle")
        self.set_class(False, "-stuck", "-warning", "-error")
        self.query_one(".status", Label).update("waiting for a task")
        self.query_one(ProgressBar).update(total=100, progress=0)
        self._set_note("", "")

    def _set_note(self, note: str, level: str) -> None:
        """The gate, a predicted conflict, or why the task stopped: one line, coloured by how much it matters.

        The line is always there, empty when there is nothing to say, so a note never moves the log below
        it: no layout pass, and a modal opened over the pane never catches it half laid out.
        """
        label = self.query_one(".note", Label)
        if note != self._note:
            self._note = note
            label.update(note, layout=False)
        label.set_class(bool(note), "-shown")
        for name in (INFO, WARNING, ERROR):
            label.set_class(level == name, f"-{name}")


def _timings(record: Any, now: float) -> tuple[float | None, float | None]:
    """(seconds the task has run, seconds since its last output), None where not known yet."""
    elapsed = None if record.started is None else (record.ended or now) - record.started
    quiet = None if record.last_output is None else now - record.last_output
    return elapsed, quiet


def status_line(record: Any, status: TaskStatus, elapsed: float | None, quiet: float | None) -> str:
    """The pane's status line, most telling first: a narrow pane cuts the line at its end."""
    parts = [
        status_label(status),
        *_doing_and_where(record, status),
        f"elapsed {format_duration(elapsed)}",
        progress_text(record.progress),
    ]
    if quiet is not None and status.is_active:
        parts.append(f"last output {format_duration(quiet)} ago")
    return " · ".join(part for part in parts if part)


def _doing_and_where(record: Any, status: TaskStatus) -> list[str]:
    """What the agent says it does, its attempt, and (while at work) its confinement and node; "" for each
    that does not apply."""
    active = status.is_active
    where = getattr(record, "where", "")
    return [
        activity_text(record),
        f"attempt {record.attempts}" if record.attempts > 1 else "",
        "confined" if record.confined and active else "",
        f"on {where}" if where not in ("", "local") and active else "",
    ]
