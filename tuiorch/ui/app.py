"""The tuiorch TUI: worker panes, the queue, and the keys that steer the orchestrator.

Data flows "attributes down, messages up": the bridge turns engine events into messages, the handlers
only mark what changed, and a 10 Hz tick re-reads `orchestrator.records` / `queue_view()` into widgets.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.keys import _character_to_key
from textual.widgets import Footer
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from tuiorch.agent_output import format_usage
from tuiorch.config import Config
from tuiorch.events import RunFinished, TaskStatus
from tuiorch.hunks import Resolution
from tuiorch.orchestrator import CommandError, Orchestrator
from tuiorch.tasks import Priority, Task, TaskFileError, load_tasks, write_priority
from tuiorch.ui import messages
from tuiorch.ui.bindings import MAIN_BINDINGS, validate_keymap
from tuiorch.ui.bridge import Bridge
from tuiorch.ui.commands import TuiorchCommands
from tuiorch.ui.format import (
    NONE,
    exit_code_for,
    format_duration,
    outcome_parts,
    pending_lines,
    pool_counts,
    queue_lines,
    short_sha,
    status_label,
)
from tuiorch.ui.screens import (
    AddTaskScreen,
    ConfirmScreen,
    ConflictScreen,
    DiffScreen,
    HelpScreen,
    LogScreen,
    SummaryScreen,
)
from tuiorch.ui.screens.add_task import append_task
from tuiorch.ui.screens.help import key_rows
from tuiorch.ui.watch import task_file_changes
from tuiorch.ui.widgets import PoolHeader, QueuePane, WorkerPane
from tuiorch.ui.widgets.queue_table import QueueTable
from tuiorch.ui.widgets.worker_pane import PANE_MAX_LINES

#: How often panes, queue and header are redrawn from the orchestrator's state.
TICK_SECONDS = 0.1
#: How often new output is written into the panes: a scrolling tail reads the same at 4 Hz, and each write
#: repaints whole panes, which under a flood from every slot is most of what the UI loop does.
OUTPUT_SECONDS = 0.25
#: After a reorder key the queue pane shows the move at once and re-reads the engine's queue view this much
#: later: at 10,000 tasks that read costs the engine ~100 ms, which a burst of J/K presses must not wait for.
QUEUE_SETTLE_SECONDS = 0.3
#: A queue re-read that took t seconds waits this many t before the next, so a big queue under a busy pool
#: never takes more than a fraction of the UI loop.
QUEUE_READ_SPACING = 4.0
#: Panes per row before the grid wraps.
PANE_COLUMNS = 3
#: Exit status for ctrl+c (DESIGN §1).
INTERRUPTED = 130

#: Main-screen actions that are engine commands on the selected task: the engine says when they apply.
ENGINE_COMMANDS = {
    "move_up": "move",
    "move_down": "move",
    "move_top": "move",
    "priority": "priority",
    "toggle_hold": "hold",
    "cancel": "cancel",
    "retry": "retry",
    "merge_now": "merge",
    "send_back": "send_back",
}
IN_CONFLICT = frozenset({TaskStatus.CONFLICT, TaskStatus.RESOLVING})


class TuiorchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tuiorch"
    BINDINGS = MAIN_BINDINGS
    COMMANDS = App.COMMANDS | {TuiorchCommands}

    def __init__(
        self,
        root: Path,
        config: Config,
        tasks: list[Task],
        task_file: Path | None,
        *,
        paused: bool = False,
        watch_tasks: bool = True,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.config = config
        self.task_file = task_file
        #: Source of "now" for elapsed times; tests and screenshots freeze it.
        self.clock: Callable[[], float] = time.time
        #: Hide values that differ run to run (durations, commit ids): for snapshots only.
        self.redact = False
        self.bridge = Bridge(self.post_message, tail_lines=PANE_MAX_LINES)
        self.orch = Orchestrator(root, config, tasks, self.bridge.sink, task_file=task_file, keep_alive=True)
        #: `[keymap]` as binding id -> keys (the help screen shows keys as bound).
        self.keymap_ids = validate_keymap(config.keymap)
        self.set_keymap(self.keymap_ids)
        #: What the app leaves on the terminal when it exits: the run's summary (see `farewell`).
        self.farewell_text = ""
        self._start_paused = paused
        self._watch = watch_tasks and task_file is not None
        self._dirty = True
        self._engine: Worker[RunFinished] | None = None
        self._summary: RunFinished | None = None
        #: The run's tokens and cost as the header shows them, and when to read them again.
        self._spent = ""
        self._spent_read_after = 0.0
        #: task -> the hunk choices made in the conflict modal, kept across closing and reopening it.
        self._resolutions: dict[str, Resolution] = {}
        self._last_task_text: str | None = None
        #: What the footer last showed as enabled, so it is rebuilt only when that changes.
        self._footer_state: tuple[object, ...] = ()
        self._pane_cache: list[WorkerPane] | None = None
        self._output_written = 0.0
        self._main_actions = tuple(dict.fromkeys(b.action.partition("(")[0] for b in MAIN_BINDINGS))
        self._main_action_names = frozenset(self._main_actions)
        #: Why the key being handled does nothing (judged as it arrived), for on_key to say.
        self._key_refusal: str | None = None
        #: The engine's queue version the queue pane shows (None: never read).
        self._queue_version: int | None = None
        #: monotonic time before which the queue is not re-read (after a previewed move, or a slow read).
        self._queue_read_after = 0.0
        #: The first task in conflict (for `c` and the footer), found again when the queue is re-read.
        self._first_conflict: str | None = None
        self._conflicts_scanned = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield PoolHeader(self.root.name, id="header")
        with Vertical(id="main"):
            yield Grid(*(WorkerPane(i) for i in range(self._pane_count())), id="workers")
            yield QueuePane(id="queue")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p still opens it; the room goes to keys

    def on_mount(self) -> None:
        self._layout_panes()
        if self._start_paused:
            self.orch.pause()
        if self.task_file is not None and self.task_file.exists():
            self._last_task_text = self.task_file.read_text(encoding="utf-8", errors="replace")
        self.render_state()
        self.query_one("#queue-table", QueueTable).focus()
        self.set_interval(TICK_SECONDS, self.render_state)
        self._engine = self._run_engine()
        if self._watch:
            self._watch_task_file()

    @property
    def panes(self) -> list[WorkerPane]:
        return list(self.query(WorkerPane))

    @property
    def _panes(self) -> list[WorkerPane]:
        # The tick runs ten times a second: keep the DOM query for when the pool changes.
        if self._pane_cache is None:
            self._pane_cache = self.panes
        return self._pane_cache

    def _pane_count(self) -> int:
        # A shrunk pool keeps its trailing slots until their tasks end, so show those too.
        return max(self.orch.workers, len(self.orch.slots))

    def _layout_panes(self) -> None:
        self._pane_cache = None  # panes mounted or removed since sync_panes are settled now
        grid = self.query_one("#workers", Grid)
        count = len(self.panes)
        columns = max(1, min(PANE_COLUMNS, count))
        grid.styles.grid_size_columns = columns
        grid.styles.grid_size_rows = max(1, -(-count // columns))

    def sync_panes(self) -> None:
        """Mount or remove panes so there is one per slot."""
        wanted = self._pane_count()
        panes = self.panes
        grid = self.query_one("#workers", Grid)
        if len(panes) < wanted:
            grid.mount_all(WorkerPane(i) for i in range(len(panes), wanted))
        for pane in panes[wanted:]:
            pane.remove()
        self._pane_cache = None
        self.call_after_refresh(self._layout_panes)
        self._dirty = True

    # ------------------------------------------------------------------ rendering

    def render_state(self) -> None:
        """Re-read the orchestrator into the widgets (attributes down), and write waiting output.

        Everything happens in one batch per tick, so a flood of output from every slot costs one frame
        per tick, not one per pane per line burst.
        """
        if not self.screen_stack:
            return  # shutting down: the interval may fire once more after the screens are gone
        orch = self.orch
        now = self.clock()
        tick = time.monotonic()
        write_output = tick - self._output_written >= OUTPUT_SECONDS
        if write_output:
            self._output_written = tick
        with self.batch_update():
            shown: set[str] = set()
            for pane in self._panes:
                task_id = orch.slots[pane.slot] if pane.slot < len(orch.slots) else None
                if task_id is None and pane.task_id is not None:
                    # Keep showing the slot's last task (merging, merged, failed) until another one starts.
                    task_id = pane.task_id
                record = orch.records.get(task_id) if task_id else None
                if record is not None and record.status is TaskStatus.QUEUED:
                    record = None
                before = pane.task_id
                pane.show(record, now, redact=self.redact)
                if pane.task_id is None:
                    continue
                shown.add(pane.task_id)
                if pane.task_id != before:
                    self.bridge.take_output(pane.task_id)  # the pane started from record.tail, which has these
                elif write_output:
                    pane.write_output(*self.bridge.take_output_counted(pane.task_id))
            for task_id in self.bridge.waiting_tasks():
                if task_id not in shown:
                    self.bridge.take_output(task_id)  # no pane shows it; the log file has every line
            if tick >= self._spent_read_after:
                # The run's cost changes with agents' output, not with task states: read it once a second.
                self._spent_read_after = tick + 1.0
                spent = format_usage(orch.total_usage())
                if spent != self._spent:
                    self._spent = spent
                    self._dirty = True
            if self._dirty:
                self._dirty = False
                self.query_one(PoolHeader).show(pool_counts(orch.records, orch.workers, orch.paused), self._spent)
                self._refresh_footer()
            self._refresh_queue(tick)

    @property
    def queue_in_sync(self) -> bool:
        """Whether the queue pane shows the engine's current queue (not a previewed move or an older read)."""
        return self._queue_version == self.orch._version

    def _refresh_queue(self, now: float, *, force: bool = False) -> None:
        """Rebuild the queue lines only when the engine's state changed since the last read."""
        orch = self.orch
        if self.queue_in_sync or (not force and now < self._queue_read_after):
            return
        version = orch._version
        started = time.perf_counter()
        self.query_one(QueuePane).show(queue_lines(orch.queue_view(), orch.records, orch.slots))
        self._queue_version = version
        self._first_conflict = self._scan_conflicts()
        self._queue_read_after = now + QUEUE_READ_SPACING * (time.perf_counter() - started)
        self._refresh_footer()  # the row under the cursor may have changed state

    def mark_dirty(self) -> None:
        self._dirty = True

    # ------------------------------------------------------------------ messages up

    def on_output_ready(self, _message: messages.OutputReady) -> None:
        pass  # the bridge holds the lines; the tick writes them into the panes in one batch

    def on_progress_changed(self, _message: messages.ProgressChanged) -> None:
        pass  # the tick re-reads progress from the record

    def on_task_changed(self, _message: messages.TaskChanged) -> None:
        self._dirty = True

    def on_queue_updated(self, _message: messages.QueueUpdated) -> None:
        self._dirty = True

    def on_pool_updated(self, _message: messages.PoolUpdated) -> None:
        self.sync_panes()

    def on_conflict_arrived(self, message: messages.ConflictArrived) -> None:
        """A conflict shows in the header, the queue and its pane, and `c` opens it: the modal never opens
        by itself over what the user is looking at."""
        self._dirty = True
        screen = self.screen
        if isinstance(screen, ConflictScreen) and screen.task_id == message.task:
            screen.refresh_from_engine()
            return
        self.notify(f"task {message.task} conflicts with {self.orch.base}: press c to resolve it",
                    severity="warning", timeout=8)

    def on_notice_arrived(self, message: messages.NoticeArrived) -> None:
        severity = {"error": "error", "warning": "warning"}.get(message.level, "information")
        self.notify(message.message, severity=severity)  # type: ignore[arg-type]

    def on_run_ended(self, _message: messages.RunEnded) -> None:
        self._dirty = True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors surface: commands, the engine, the file watcher."""
        worker = event.worker
        if event.state is WorkerState.SUCCESS and worker.group == "engine":
            self._summary = worker.result
        if event.state is not WorkerState.ERROR:
            return
        error = worker.error
        if isinstance(error, CommandError):
            self.notify(str(error), severity="warning")
        elif worker.group == "engine":
            self.notify(f"the orchestrator stopped: {error}", title="engine error", severity="error", timeout=30)
        else:
            self.notify(f"{type(error).__name__}: {error}", severity="error")
        self._dirty = True

    def on_queue_table_row_selected(self, _event: QueueTable.RowSelected) -> None:
        self.action_open()

    def on_descendant_focus(self, _event: object) -> None:
        self._refresh_footer()

    def on_queue_table_row_highlighted(self, _event: QueueTable.RowHighlighted) -> None:
        self._refresh_footer()

    def _refresh_footer(self) -> None:
        """Grey out or light up keys, only when that changes: the Footer rebuilds all its keys each time,
        which costs tens of milliseconds and would otherwise follow every cursor move and state change."""
        # A table redrawn on the last tick posts RowHighlighted, which may arrive after the screens are gone.
        if not self.screen_stack:
            return
        enabled = (self.screen, tuple(self.check_action(name, ()) for name in self._main_actions))
        if enabled != self._footer_state:
            self._footer_state = enabled
            self.refresh_bindings()

    # ------------------------------------------------------------------ workers

    @work(exclusive=True, group="engine", exit_on_error=False, name="engine")
    async def _run_engine(self) -> RunFinished:
        return await self.orch.run()

    @work(exclusive=True, group="watch", exit_on_error=False, name="watch tasks")
    async def _watch_task_file(self) -> None:
        assert self.task_file is not None
        async for _ in task_file_changes(self.task_file):
            self.reload_task_file()

    def run_command(self, coroutine: Awaitable[Any]) -> Worker[Any]:
        """Run an async orchestrator command off the handler; its errors reach on_worker_state_changed."""

        async def call() -> Any:
            result = await coroutine
            self._dirty = True
            return result

        return self.run_worker(call(), group="commands", exit_on_error=False)

    def command(self, method: Callable[..., Any], *args: Any) -> bool:
        """Call a plain orchestrator command; a refusal becomes a notification."""
        try:
            method(*args)
        except CommandError as exc:
            self.notify(str(exc), severity="warning")
            return False
        self._dirty = True
        return True

    def reload_task_file(self) -> None:
        """Apply an edited task file, or report why it was not applied and change nothing."""
        assert self.task_file is not None
        try:
            text = self.task_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        if text is not None and text == self._last_task_text:
            return
        try:
            tasks = load_tasks(self.task_file)
        except TaskFileError as exc:
            self.notify(str(exc), title=f"{self.task_file.name} not applied", severity="error", timeout=15)
            return
        self._last_task_text = text
        if self.command(self.orch.reload_tasks, tasks):
            self.notify(f"{self.task_file.name} reloaded: {len(tasks)} tasks")

    # ------------------------------------------------------------------ selection and greying

    def selected_task(self) -> str | None:
        """The focused worker's task, else the task under the queue cursor."""
        node = self.focused
        while node is not None and not isinstance(node, WorkerPane | QueuePane):
            node = node.parent  # type: ignore[assignment]
        if isinstance(node, WorkerPane):
            return node.task_id
        return self.query_one(QueuePane).selected_id

    def _selected_record(self) -> Any | None:
        task_id = self.selected_task()
        return self.orch.records.get(task_id) if task_id else None

    def _conflict_task(self) -> str | None:
        record = self._selected_record()
        if record is not None and record.status in IN_CONFLICT:
            return record.task.id
        # The footer asks on every cursor move: the scan of every task is redone with the queue's re-read.
        if not self._conflicts_scanned:
            self._first_conflict = self._scan_conflicts()
        found = self._first_conflict
        if found is not None and self.orch.records[found].status not in IN_CONFLICT:
            found = self._first_conflict = self._scan_conflicts()
        return found

    def _scan_conflicts(self) -> str | None:
        self._conflicts_scanned = True
        return next((tid for tid in self.orch.order if self.orch.records[tid].status in IN_CONFLICT), None)

    def applies(self, action: str, parameters: tuple[object, ...] = ()) -> bool:
        """Whether a main-screen action does something for the current selection."""
        return self.why_not(action) is None

    def why_not(self, action: str) -> str | None:
        """Why a main-screen action does nothing for the current selection now, or None if it applies.

        Commands on a task are the engine's to judge (Orchestrator.refusal); the rest are the UI's own.
        """
        if action in ENGINE_COMMANDS:
            return self.orch.refusal(ENGINE_COMMANDS[action], self.selected_task())
        record = self._selected_record()
        if action == "shrink_pool" and self.orch.workers <= 1:
            return "the pool is down to one worker"
        if action == "conflicts" and self._conflict_task() is None:
            return "no task is in conflict"
        if action == "log":
            if record is None:
                return "no task selected"
            if record.log_path is None:
                return f"task {record.task.id} has no log yet: it has not started"
        if action == "diff":
            if record is None:
                return "no task selected"
            if record.status is TaskStatus.QUEUED and record.branch is None:
                return f"task {record.task.id} has not started: nothing to review yet"
        if action == "open" and record is None:
            return "no task selected"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in self._main_action_names:
            return True
        if action == "help":
            return not isinstance(self.screen, HelpScreen)  # there, `?` closes it
        if action in ("quit", "interrupt"):
            return True
        if self.screen_stack and self.screen is not self.screen_stack[0]:
            return False  # a modal or the diff screen has its own keys; hide the main screen's from its footer
        # A key that does not apply now leaves the footer (room for the ones that do; `?` lists all), and
        # pressing it says why (on_key).
        return self.applies(action, parameters)

    async def on_event(self, event: events.Event) -> None:
        # Judge a key when it arrives, before its action runs: afterwards a retry that worked would read as
        # "task 1 is queued; only a failed ... task is retried".
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._key_refusal = self._refusal_for(event.key)
        await super().on_event(event)

    def _refusal_for(self, key: str) -> str | None:
        """Why the main-screen key `key` would do nothing now, or None (it applies, or is no such key)."""
        if not self.screen_stack or self.screen is not self.screen_stack[0]:
            return None
        action = self._main_key_actions().get(key)
        if action is None or action in ("help", "quit", "interrupt"):
            return None
        return self.why_not(action)

    def on_key(self, event: events.Key) -> None:
        """A main-screen key pressed where it does not apply: say why instead of doing nothing."""
        why, self._key_refusal = self._key_refusal, None
        if why is not None:
            self.notify(why, title=f"{event.key}: not now", severity="warning", timeout=4)

    def _main_key_actions(self) -> dict[str, str]:
        """key -> action name of the main screen, as bound now (after `[keymap]`)."""
        keys: dict[str, str] = {}
        for binding in MAIN_BINDINGS:
            bound = self.keymap_ids.get(binding.id, binding.key) if binding.id else binding.key
            for key in bound.split(","):
                keys.setdefault(_key_name(key.strip()), binding.action.partition("(")[0])
        return keys

    def action_help(self) -> None:
        screen = self.screen
        if screen is self.screen_stack[0]:
            actions = {b.id or b.action: self.applies(b.action.partition("(")[0]) for b in MAIN_BINDINGS}
            rows = key_rows(self, [*MAIN_BINDINGS, *QueueTable.BINDINGS], self.keymap_ids, actions)
            title = "keys · main screen"
        else:
            bindings = [b for b in type(screen).BINDINGS if isinstance(b, Binding)]
            rows = key_rows(self, [*bindings, MAIN_BINDINGS[0]], self.keymap_ids)
            title = f"keys · {type(screen).__name__.removesuffix('Screen').lower()} dialog"
        self.push_screen(HelpScreen(title, rows))

    # ------------------------------------------------------------------ actions: the queue

    def action_move_up(self) -> None:
        self._move_queued(-1)

    def action_move_down(self) -> None:
        self._move_queued(1)

    def action_move_top(self) -> None:
        self._move_queued(None)

    def _move_queued(self, delta: int | None) -> None:
        """Reorder in the engine, then show the move at once (delta None: to the top)."""
        task_id = self.selected_task()
        if not task_id:
            return
        before = self.orch.records[task_id].task.priority if task_id in self.orch.records else None
        moved = self.command(self.orch.move_top, task_id) if delta is None \
            else self.command(self.orch.move, task_id, delta)
        if not moved:
            return
        queue = self.query_one(QueuePane)
        queue.pin_cursor()
        if delta is None and self.orch.records[task_id].task.priority != before:
            self._write_priority(task_id)  # `T` raised its tier so it really starts next
        row = queue.row_of(task_id)
        if row is None:
            self._refresh_queue(time.monotonic(), force=True)
            return
        queue.preview_move(task_id, 0 if delta is None else row + delta)
        self._queue_read_after = time.monotonic() + QUEUE_SETTLE_SECONDS

    def action_priority(self, name: str) -> None:
        task_id = self.selected_task()
        if task_id and self.command(self.orch.set_priority, task_id, Priority.parse(name)):
            self.query_one(QueuePane).pin_cursor()
            self._write_priority(task_id)

    def _write_priority(self, task_id: str) -> None:
        """Write the task's priority, as the engine now has it, into the task file (formatting kept)."""
        record = self.orch.records.get(task_id)
        if self.task_file is None or record is None:
            return
        priority = record.task.priority
        try:
            write_priority(self.task_file, task_id, priority)
        except TaskFileError as exc:
            self.notify(f"priority {priority.label} applies to this run, but {exc}", severity="warning")
            return
        # The watcher will see our own write: read as reload_task_file reads it, so it is not an edit.
        with contextlib.suppress(OSError):
            self._last_task_text = self.task_file.read_text(encoding="utf-8", errors="replace")
        self.notify(f"task {task_id}: priority {priority.label} (written to {self.task_file.name})", timeout=3)

    def action_toggle_hold(self) -> None:
        if (task_id := self.selected_task()) and self.command(self.orch.toggle_hold, task_id):
            self.query_one(QueuePane).pin_cursor()

    def action_add_task(self) -> None:
        where = self.task_file.name if self.task_file is not None else "this run only (no task file)"

        def added(task: Task | None) -> None:
            if task is not None:
                self.notify(f"task {task.id} added to {where}")
                self._refresh_queue(time.monotonic(), force=True)  # draw its row now, so the cursor can go to it
                self.query_one(QueuePane).select(task.id)
                self.query_one(QueuePane).pin_cursor()

        self.push_screen(AddTaskScreen(self.orch.records.keys(), self.save_new_task, where), added)

    def save_new_task(self, task: Task) -> str | None:
        """Append `task` to the task file and queue it; an error message (and nothing changed) on failure."""
        if task.id in self.orch.records:
            return f"a task {task.id} exists already"
        unknown = [dep for dep in task.depends if dep not in self.orch.records]
        if unknown:
            return f"task {task.id} depends on unknown task {', '.join(unknown)}"
        if self.task_file is not None:
            try:
                append_task(self.task_file, task)
            except TaskFileError as exc:
                return str(exc)
            # The watcher will see our own write: it must not count as an edit to reload.
            with contextlib.suppress(OSError):
                self._last_task_text = self.task_file.read_text(encoding="utf-8", errors="replace")
        try:
            self.orch.add_task(task)
        except CommandError as exc:
            return str(exc)
        self._dirty = True
        return None

    # ------------------------------------------------------------------ actions: the pool

    def action_grow_pool(self) -> None:
        self.command(self.orch.set_workers, self.orch.workers + 1)

    def action_shrink_pool(self) -> None:
        self.command(self.orch.set_workers, self.orch.workers - 1)

    def action_toggle_pause(self) -> None:
        self.command(self.orch.resume if self.orch.paused else self.orch.pause)

    def _refused(self, action: str) -> bool:
        """Say why `action` does not apply now (reached from the command palette or a test); True then."""
        if (why := self.why_not(action)) is None:
            return False
        self.notify(why, severity="warning", timeout=4)
        return True

    def action_cancel(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("cancel"):
            return
        task_id = record.task.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.command(self.orch.cancel, task_id)

        self.push_screen(ConfirmScreen(f"Cancel task {task_id} ({record.task.title})?", yes="Cancel it"), answered)

    def action_retry(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("retry"):
            return
        stopped = record.status in (TaskStatus.CANCELLED, TaskStatus.FAILED)
        if self.command(self.orch.retry, record.task.id) and stopped and record.branch:
            self.notify(f"task {record.task.id} queued again; its agent continues from the work on {record.branch}")

    def action_merge_now(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("merge_now"):
            return
        self.run_command(self.orch.approve_merge(record.task.id))

    def action_send_back(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("send_back"):
            return
        task_id = record.task.id
        to = "its agent with the check's output" if record.status is TaskStatus.CHECK_FAILED else "the resolver agent"
        self.run_command(self.orch.hand_to_agent(task_id))
        self.notify(f"task {task_id} sent back to {to}")

    # ------------------------------------------------------------------ actions: screens

    def action_open(self) -> None:
        record = self._selected_record()
        if record is None:
            return
        if record.status in IN_CONFLICT:
            self.open_conflict(record.task.id)
        elif record.log_path is not None:
            self.action_log()
        else:
            task = record.task
            self.notify(task.description or "(no description)", title=f"task {task.id} {task.title}", timeout=10)

    def action_conflicts(self) -> None:
        if task_id := self._conflict_task():
            self.open_conflict(task_id)
        else:
            self._refused("conflicts")

    def open_conflict(self, task_id: str) -> None:
        def closed(result: str | None) -> None:
            self._dirty = True
            record = self.orch.records.get(task_id)
            state = status_label(record.status) if record else "gone"
            if result == "resolved":
                self.notify(f"task {task_id}: resolution committed, {state}")
            elif result == "requeued":
                self.notify(f"task {task_id} requeued at the head of the queue")
            elif result == "agent":
                self.notify(f"task {task_id} handed to the resolver agent")
            elif result == "gone":
                self.notify(f"task {task_id} is no longer in conflict: {state}")

        self.push_screen(ConflictScreen(self.orch, task_id, self._resolutions), closed)

    def action_diff(self) -> None:
        record = self._selected_record()
        if record is None:
            return
        if record.status is TaskStatus.QUEUED and record.branch is None:
            self.notify(f"task {record.task.id} has not started: nothing to review yet", severity="warning")
            return

        def closed(_result: str | None) -> None:
            self._dirty = True

        self.push_screen(DiffScreen(self.orch, record.task.id, auto_merge=self.config.merge.auto), closed)

    def action_log(self) -> None:
        record = self._selected_record()
        if record is not None and not self._refused("log"):
            self.push_screen(LogScreen(f"{record.task.id} {record.task.title}", record.log_path, self.orch.root))

    def summary_rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        rows = []
        for task_id in self.orch.order:
            record = self.orch.records[task_id]
            rows.append(
                (
                    task_id,
                    record.task.title,
                    status_label(record.status, record.held),
                    NONE if self.redact and record.elapsed is not None else format_duration(record.elapsed),
                    ("•" * 7 if record.commit else NONE) if self.redact else short_sha(record.commit),
                    format_usage(record.usage) or NONE,
                    record.reason,
                )
            )
        return rows

    def action_summary(self) -> None:
        counts = pool_counts(self.orch.records, self.orch.workers, self.orch.paused)
        total = len(self.orch.records)
        title = " · ".join(["summary", f"{counts.merged} of {total} merged", *outcome_parts(counts)])
        if spent := format_usage(self.orch.total_usage()):
            title += f" · agents used {spent}"
        commits = self.orch.main_commits()
        if self.redact:
            commits = [("•" * 7, subject) for _sha, subject in commits]
        self.push_screen(SummaryScreen(title, self.summary_rows(), commits, self.change_stat))

    async def change_stat(self, task_id: str) -> str:
        """'2 files +10 −3' for a task that has work to show, else "—"."""
        record = self.orch.records.get(task_id)
        if record is None or (record.status is TaskStatus.QUEUED and record.branch is None):
            return NONE
        diff = await self.orch.task_diff(task_id, max_lines=0)
        return diff.stat if diff.files or "nothing yet" not in diff.source else NONE

    # ------------------------------------------------------------------ leaving

    def exit_code(self) -> int:
        return exit_code_for(record.status for record in self.orch.records.values())

    def action_quit(self) -> None:  # type: ignore[override]
        running = sum(1 for record in self.orch.records.values() if record.status.is_active)
        if not running:
            self.shutdown()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.shutdown()

        noun, them = ("worker is", "it") if running == 1 else ("workers are", "them")
        self.push_screen(ConfirmScreen(f"{running} {noun} running. Stop {them} and quit?", yes="Stop and quit"),
                         answered)

    def action_interrupt(self) -> None:
        self.shutdown(INTERRUPTED)

    @work(exclusive=True, group="shutdown", exit_on_error=False, name="shutdown")
    async def shutdown(self, code: int | None = None) -> None:
        """Stop the orchestrator, wait until every agent is gone, then exit."""
        self.notify("stopping workers…", timeout=30)
        self.orch.stop()
        if self._engine is not None and self._engine.state in (WorkerState.PENDING, WorkerState.RUNNING):
            # An engine error was already reported by on_worker_state_changed; leaving must still work.
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self._engine.wait()
        self.farewell_text = self.farewell()
        self.exit(self.exit_code() if code is None else code)

    def farewell(self) -> str:
        """The run's summary for the terminal once the app is gone, and what still waits on the user."""
        from tuiorch.headless import format_summary

        summary = self._engine.result if self._engine is not None and self._engine.result is not None else None
        if summary is None:
            summary = self.orch.summary()
        text = format_summary(summary).lstrip("\n")
        pending = pending_lines(self.orch.records[task_id] for task_id in self.orch.order)
        if pending:
            text += f"\n\nWaiting for you in {self.orch.root}:\n" + "\n".join(pending)
        return text

    def run_editor(self, path: Path, line: int | None = None) -> bool:
        """Open `path` in $VISUAL / $EDITOR (at `line`: the `+N` argument vi, nano and emacs read) with the
        app suspended; False if no editor could run."""
        command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        argv = [*shlex.split(command), *([f"+{line}"] if line else []), str(path)]
        try:
            try:
                with self.suspend():
                    done = subprocess.run(argv, check=False)
            except SuspendNotSupported:
                # Headless (tests) or web: nothing to hand the terminal to, so run the editor as it is.
                done = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as exc:
            self.notify(f"could not run editor {argv[0]!r}: {exc}", severity="error")
            return False
        if done.returncode != 0:
            self.notify(f"editor exited {done.returncode}; {path.name} left as it is", severity="warning")
            return False
        return True


def _key_name(key: str) -> str:
    """A key as bindings and `[keymap]` write it ("?", "question_mark", "ctrl+k") as Key events name it."""
    return _character_to_key(key) if len(key) == 1 else key
