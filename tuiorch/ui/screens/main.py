"""The main screen: worker panes, the queue, the header and footer, and the keys that steer the run.

Data flows "attributes down, messages up": the app turns engine messages into `mark_dirty`, and a 10 Hz
tick re-reads `orchestrator.records` / `queue_view()` into the widgets. The App owns the engine, the task
file and leaving; this screen owns what is drawn and what its keys do.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer

from tuiorch.agent_output import format_usage
from tuiorch.model.status import IN_CONFLICT, TaskStatus
from tuiorch.tasks import Priority, Task
from tuiorch.ui import availability
from tuiorch.ui.bindings import MAIN_BINDINGS
from tuiorch.ui.format import (
    NONE,
    outcome_parts,
    pool_counts,
    queue_lines,
    status_label,
    summary_rows,
)
from tuiorch.ui.screens.add_task import AddTaskScreen
from tuiorch.ui.screens.confirm import ConfirmScreen
from tuiorch.ui.screens.conflict import ConflictScreen
from tuiorch.ui.screens.diff import DiffScreen
from tuiorch.ui.screens.help import HelpScreen
from tuiorch.ui.screens.log import LogScreen
from tuiorch.ui.screens.summary import SummaryScreen
from tuiorch.ui.widgets import PoolHeader, QueuePane, WorkerPane
from tuiorch.ui.widgets.queue_table import QueueTable
from tuiorch.ui.widgets.worker_grid import WorkerGrid

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator, TaskRecord
    from tuiorch.ui.host import Host

#: How often new output is written into the panes: a scrolling tail reads the same at 4 Hz, and each write
#: repaints whole panes, which under a flood from every slot is most of what the UI loop does.
OUTPUT_SECONDS = 0.25
#: After a reorder key the queue pane shows the move at once and re-reads the engine's queue view this much
#: later: at 10,000 tasks that read costs the engine ~100 ms, which a burst of J/K presses must not wait for.
QUEUE_SETTLE_SECONDS = 0.3
#: A queue re-read that took t seconds waits this many t before the next, so a big queue under a busy pool
#: never takes more than a fraction of the UI loop.
QUEUE_READ_SPACING = 4.0
#: Main-screen actions that apply everywhere, whatever is selected.
ALWAYS = frozenset({"quit", "interrupt"})


class MainScreen(Screen[None]):
    BINDINGS = MAIN_BINDINGS

    def __init__(self, orch: Orchestrator) -> None:
        super().__init__()
        self.orch = orch
        self._dirty = True
        #: The run's tokens and cost as the header shows them, and when to read them again.
        self._spent = ""
        self._spent_read_after = 0.0
        #: What the footer last showed as enabled, so it is rebuilt only when that changes.
        self._footer_state: tuple[object, ...] = ()
        self._output_written = 0.0
        self._main_actions = tuple(dict.fromkeys(b.action.partition("(")[0] for b in MAIN_BINDINGS))
        self._main_action_names = frozenset(self._main_actions)
        #: The engine's queue version the queue pane shows (None: never read).
        self._queue_version: int | None = None
        #: monotonic time before which the queue is not re-read (after a previewed move, or a slow read).
        self._queue_read_after = 0.0
        #: The first task in conflict (for `c` and the footer), found again when the queue is re-read.
        self._first_conflict: str | None = None
        self._conflicts_scanned = False

    @property
    def tuiorch(self) -> Host:
        return self.app  # type: ignore[return-value]

    # ------------------------------------------------------------------ layout

    def on_mount(self) -> None:
        self._grid = self.query_one(WorkerGrid)  # the tick draws into it ten times a second
        self._grid.layout_panes()
        self.render_state()
        self.query_one("#queue-table", QueueTable).focus()
        self.tuiorch.begin()

    def compose(self) -> ComposeResult:
        yield PoolHeader(self.orch.root.name, id="header")
        with Vertical(id="main"):
            yield WorkerGrid(self._pane_count(), id="workers")
            yield QueuePane(id="queue")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p still opens it; the room goes to keys

    def _pane_count(self) -> int:
        # A shrunk pool keeps its trailing slots until their tasks end, so show those too.
        return max(self.orch.workers, len(self.orch.slots))

    def sync_panes(self) -> None:
        """Mount or remove panes so there is one per slot."""
        self._grid.sync(self._pane_count())
        self._dirty = True

    # ------------------------------------------------------------------ rendering

    def render_state(self) -> None:
        """Re-read the orchestrator into the widgets (attributes down), and write waiting output.

        Everything happens in one batch per tick, so a flood of output from every slot costs one frame
        per tick, not one per pane per line burst.
        """
        if not self.app.screen_stack:
            return  # shutting down: the interval may fire once more after the screens are gone
        tick = time.monotonic()
        write_output = tick - self._output_written >= OUTPUT_SECONDS
        if write_output:
            self._output_written = tick
        with self.app.batch_update():
            app = self.tuiorch
            self._grid.show(self.orch, app.bridge, app.clock(), redact=app.redact, write_output=write_output)
            if tick >= self._spent_read_after:
                # The run's cost changes with agents' output, not with task states: read it once a second.
                self._spent_read_after = tick + 1.0
                spent = format_usage(self.orch.total_usage())
                if spent != self._spent:
                    self._spent = spent
                    self._dirty = True
            if self._dirty:
                self._dirty = False
                counts = pool_counts(self.orch.records, self.orch.workers, self.orch.paused)
                self.query_one(PoolHeader).show(counts, self._spent)
                self.refresh_footer()
            self.refresh_queue(tick)

    @property
    def queue_in_sync(self) -> bool:
        """Whether the queue pane shows the engine's current queue (not a previewed move or an older read)."""
        return self._queue_version == self.orch._version

    def refresh_queue(self, now: float, *, force: bool = False) -> None:
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
        self.refresh_footer()  # the row under the cursor may have changed state

    def mark_dirty(self) -> None:
        self._dirty = True

    def on_queue_table_row_selected(self, _event: QueueTable.RowSelected) -> None:
        self.action_open()

    def on_queue_table_row_highlighted(self, _event: QueueTable.RowHighlighted) -> None:
        self.refresh_footer()

    def refresh_footer(self) -> None:
        """Grey out or light up keys, only when that changes: the Footer rebuilds all its keys each time,
        which costs tens of milliseconds and would otherwise follow every cursor move and state change."""
        # A table redrawn on the last tick posts RowHighlighted, which may arrive after the screens are gone.
        if not self.app.screen_stack:
            return
        enabled = (self.app.screen, tuple(self.check_action(name, ()) for name in self._main_actions))
        if enabled != self._footer_state:
            self._footer_state = enabled
            self.app.refresh_bindings()

    # ------------------------------------------------------------------ selection and greying

    def selected_task(self) -> str | None:
        """The focused worker's task, else the task under the queue cursor."""
        node = self.focused
        while node is not None and not isinstance(node, WorkerPane | QueuePane):
            node = node.parent  # type: ignore[assignment]
        if isinstance(node, WorkerPane):
            return node.task_id
        return self.query_one(QueuePane).selected_id

    def _selected_record(self) -> TaskRecord | None:
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
        """Why a main-screen action does nothing for the current selection now, or None if it applies."""
        task_id = self.selected_task()
        record = self.orch.records.get(task_id) if task_id else None
        selection = availability.Selection(task_id, record, self._conflict_task)
        return availability.why_not(action, self.orch, selection)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in self._main_action_names or action in ALWAYS:
            return True
        if action == "help":
            return not isinstance(self.app.screen, HelpScreen)  # there, `?` closes it
        if self.app.screen is not self:
            return False  # a modal or the diff screen has its own keys; hide these from the footer beneath it
        # A key that does not apply now leaves the footer (room for the ones that do; `?` lists all), and
        # pressing it says why (the app's on_key).
        return self.applies(action, parameters)

    def _refused(self, action: str) -> bool:
        """Say why `action` does not apply now (reached from the command palette or a test); True then."""
        if (why := self.why_not(action)) is None:
            return False
        self.notify(why, severity="warning", timeout=4)
        return True

    # ------------------------------------------------------------------ actions: leaving and help (the app's)

    def action_help(self) -> None:
        self.tuiorch.action_help()

    def action_quit(self) -> None:
        self.tuiorch.action_quit()

    def action_interrupt(self) -> None:
        self.tuiorch.action_interrupt()

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
        command = self.tuiorch.command
        if not (command(self.orch.move_top, task_id) if delta is None else command(self.orch.move, task_id, delta)):
            return
        queue = self.query_one(QueuePane)
        queue.pin_cursor()
        if delta is None and self.orch.records[task_id].task.priority != before:
            self.tuiorch.write_priority(task_id)  # `T` raised its tier so it really starts next
        row = queue.row_of(task_id)
        if row is None:
            self.refresh_queue(time.monotonic(), force=True)
            return
        queue.preview_move(task_id, 0 if delta is None else row + delta)
        self._queue_read_after = time.monotonic() + QUEUE_SETTLE_SECONDS

    def action_priority(self, name: str) -> None:
        task_id = self.selected_task()
        if task_id and self.tuiorch.command(self.orch.set_priority, task_id, Priority.parse(name)):
            self.query_one(QueuePane).pin_cursor()
            self.tuiorch.write_priority(task_id)

    def action_toggle_hold(self) -> None:
        if (task_id := self.selected_task()) and self.tuiorch.command(self.orch.toggle_hold, task_id):
            self.query_one(QueuePane).pin_cursor()

    def action_add_task(self) -> None:
        where = self.tuiorch.task_file_name()

        def added(task: Task | None) -> None:
            if task is not None:
                self.notify(f"task {task.id} added to {where}")
                self.refresh_queue(time.monotonic(), force=True)  # draw its row now, so the cursor can go to it
                self.query_one(QueuePane).select(task.id)
                self.query_one(QueuePane).pin_cursor()

        self.app.push_screen(AddTaskScreen(self.orch.records.keys(), self.tuiorch.save_new_task, where), added)

    # ------------------------------------------------------------------ actions: the pool

    def action_grow_pool(self) -> None:
        self.tuiorch.command(self.orch.set_workers, self.orch.workers + 1)

    def action_shrink_pool(self) -> None:
        self.tuiorch.command(self.orch.set_workers, self.orch.workers - 1)

    def action_toggle_pause(self) -> None:
        self.tuiorch.command(self.orch.resume if self.orch.paused else self.orch.pause)

    # ------------------------------------------------------------------ actions: one task

    def action_cancel(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("cancel"):
            return
        task_id = record.task.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.tuiorch.command(self.orch.cancel, task_id)

        self.app.push_screen(ConfirmScreen(f"Cancel task {task_id} ({record.task.title})?", yes="Cancel it"), answered)

    def action_retry(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("retry"):
            return
        stopped = record.status in (TaskStatus.CANCELLED, TaskStatus.FAILED)
        if self.tuiorch.command(self.orch.retry, record.task.id) and stopped and record.branch:
            self.notify(f"task {record.task.id} queued again; its agent continues from the work on {record.branch}")

    def action_merge_now(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("merge_now"):
            return
        self.tuiorch.run_command(self.orch.approve_merge(record.task.id))

    def action_send_back(self) -> None:
        record = self._selected_record()
        if record is None or self._refused("send_back"):
            return
        task_id = record.task.id
        to = "its agent with the check's output" if record.status is TaskStatus.CHECK_FAILED else "the resolver agent"
        self.tuiorch.run_command(self.orch.hand_to_agent(task_id))
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
            said = {
                "resolved": f"task {task_id}: resolution committed, {state}",
                "requeued": f"task {task_id} requeued at the head of the queue",
                "agent": f"task {task_id} handed to the resolver agent",
                "gone": f"task {task_id} is no longer in conflict: {state}",
            }
            if result in said:
                self.notify(said[result])

        self.app.push_screen(ConflictScreen(self.orch, task_id, self.tuiorch.resolutions), closed)

    def action_diff(self) -> None:
        record = self._selected_record()
        if record is None:
            return
        if not availability.has_started(record):
            self.notify(f"task {record.task.id} has not started: nothing to review yet", severity="warning")
            return

        def closed(_result: str | None) -> None:
            self._dirty = True

        self.app.push_screen(DiffScreen(self.orch, record.task.id, auto_merge=self.orch.config.merge.auto), closed)

    def action_log(self) -> None:
        record = self._selected_record()
        if record is not None and not self._refused("log"):
            self.app.push_screen(LogScreen(f"{record.task.id} {record.task.title}", record.log_path, self.orch.root))

    def action_summary(self) -> None:
        self.app.push_screen(run_summary(self.orch, redact=self.tuiorch.redact))


def run_summary(orch: Orchestrator, *, redact: bool) -> SummaryScreen:
    """The summary screen of the run so far: every task, the commits on main, what the agents used."""
    counts = pool_counts(orch.records, orch.workers, orch.paused)
    title = " · ".join(["summary", f"{counts.merged} of {len(orch.records)} merged", *outcome_parts(counts)])
    if spent := format_usage(orch.total_usage()):
        title += f" · agents used {spent}"
    commits = orch.main_commits()
    if redact:
        commits = [("•" * 7, subject) for _sha, subject in commits]

    async def change_stat(task_id: str) -> str:
        """'2 files +10 −3' for a task that has work to show, else "—"."""
        record = orch.records.get(task_id)
        if record is None or not availability.has_started(record):
            return NONE
        diff = await orch.task_diff(task_id, max_lines=0)
        return diff.stat if diff.files or "nothing yet" not in diff.source else NONE

    return SummaryScreen(title, summary_rows(orch.records, orch.order, redact=redact), commits, change_stat)
