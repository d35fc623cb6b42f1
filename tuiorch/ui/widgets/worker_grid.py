"""The grid of worker panes: one pane per slot, each showing its slot's task and that task's new output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import Grid

from tuiorch.model.status import TaskStatus
from tuiorch.ui.widgets.worker_pane import WorkerPane

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator
    from tuiorch.ui.bridge import Bridge

#: Panes per row before the grid wraps.
PANE_COLUMNS = 3


class WorkerGrid(Grid):
    def __init__(self, count: int, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(*(WorkerPane(i) for i in range(count)), id=id)
        self._pane_cache: list[WorkerPane] | None = None

    @property
    def panes(self) -> list[WorkerPane]:
        return list(self.query(WorkerPane))

    @property
    def _panes(self) -> list[WorkerPane]:
        # The tick runs ten times a second: keep the DOM query for when the pool changes.
        if self._pane_cache is None:
            self._pane_cache = self.panes
        return self._pane_cache

    def layout_panes(self) -> None:
        self._pane_cache = None  # panes mounted or removed since `sync` are settled now
        count = len(self.panes)
        columns = max(1, min(PANE_COLUMNS, count))
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = max(1, -(-count // columns))

    def sync(self, wanted: int) -> None:
        """Mount or remove panes so there are `wanted`, one per slot."""
        panes = self.panes
        if len(panes) < wanted:
            self.mount_all(WorkerPane(i) for i in range(len(panes), wanted))
        for pane in panes[wanted:]:
            pane.remove()
        self._pane_cache = None
        self.call_after_refresh(self.layout_panes)

    def show(self, orch: Orchestrator, bridge: Bridge, now: float, *, redact: bool, write_output: bool) -> None:
        """Each pane shows its slot's task (or the slot's last one until another starts), and its new output."""
        shown: set[str] = set()
        for pane in self._panes:
            before = pane.task_id
            pane.show(_slot_record(orch, pane), now, redact=redact)
            if pane.task_id is not None:
                shown.add(pane.task_id)
                _pass_output(bridge, pane, pane.task_id, pane.task_id != before, write_output)
        for task_id in bridge.waiting_tasks():
            if task_id not in shown:
                bridge.take_output(task_id)  # no pane shows it; the log file has every line


def _slot_record(orch: Orchestrator, pane: WorkerPane) -> Any | None:
    """The record a pane shows: its slot's task, else the slot's last one until another starts (merging,
    merged, failed); never a task back in the queue. The engine says which was last: a task can start and
    leave the slot between two refreshes of the pane."""
    task_id = orch.slots[pane.slot] if pane.slot < len(orch.slots) else None
    if task_id is None:
        task_id = orch.last_in_slot.get(pane.slot, pane.task_id)
    record = orch.records.get(task_id) if task_id else None
    return None if record is None or record.status is TaskStatus.QUEUED else record


def _pass_output(bridge: Bridge, pane: WorkerPane, task_id: str, new_task: bool, write_output: bool) -> None:
    """Hand the pane its task's new output (a pane new to the task started from record.tail, which has it)."""
    if new_task:
        bridge.take_output(task_id)
    elif write_output:
        pane.write_output(*bridge.take_output_counted(task_id))
