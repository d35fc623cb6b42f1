"""The queue: every task with its start order, priority, dependencies, state and why it waits."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical

from tuiorch.ui.format import NONE, QueueLine
from tuiorch.ui.widgets.queue_table import QueueTable


def moved_lines(lines: Sequence[QueueLine], source: int, target: int, queued: int) -> list[QueueLine] | None:
    """`lines` with the queued task at row `source` moved to row `target` among the `queued` rows (they come
    first), as the engine's move/move_top orders them; None when that moves nothing. The "#" column stays
    with the row: it numbers the start order."""
    if not 0 <= source < len(lines) or lines[source].order == NONE:
        return None
    target = max(0, min(target, queued - 1))
    if target == source:
        return None
    moved = list(lines)
    moved.insert(target, moved.pop(source))
    for row in range(min(source, target), max(source, target) + 1):
        moved[row] = moved[row]._replace(order=lines[row].order)
    return moved


class QueuePane(Vertical):
    DEFAULT_CSS = """
    QueuePane { border: round $primary-darken-2; height: 1fr; }
    QueuePane:focus-within { border: round $accent; }
    QueuePane QueueTable { height: 1fr; width: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "queue"

    def compose(self) -> ComposeResult:
        yield QueueTable(id="queue-table")

    @property
    def table(self) -> QueueTable:
        return self.query_one(QueueTable)

    @property
    def lines(self) -> tuple[QueueLine, ...]:
        return self.table.lines

    @property
    def selected_id(self) -> str | None:
        return self.table.cursor_task

    def select(self, task_id: str) -> None:
        table = self.table
        if (row := table.row_of(task_id)) is not None:
            table.move_cursor(row)

    def row_of(self, task_id: str) -> int | None:
        return self.table.row_of(task_id)

    def line_of(self, task_id: str) -> QueueLine | None:
        return self.table.line_of(task_id)

    def pin_cursor(self) -> None:
        """The user chose the task under the cursor: from now on the cursor stays with it."""
        self.table.user_moved = True

    def show(self, lines: Sequence[QueueLine], rows: range | None = None) -> None:
        """Show `lines`; only rows that changed are redrawn, and the cursor stays on the same task.

        Until the user moves the cursor it stays on the first task waiting to start (the one the queue
        keys act on), not on a task that started meanwhile. `rows`: every row that may have changed,
        when the caller knows."""
        table = self.table
        selected = self.selected_id
        if not table.set_lines(lines, rows):
            return
        title = f"queue · {table.queued_count} waiting"
        if title != self.border_title:
            self.border_title = title
        if not table.user_moved and table.queued_count:
            table.move_cursor(0)
        elif selected is not None:
            self.select(selected)

    def preview_move(self, task_id: str, target: int) -> bool:
        """Show queued `task_id` at row `target` before the engine's queue view is read again (at 10,000
        tasks that costs the engine tens of milliseconds); the next `show` corrects any other row."""
        table = self.table
        source = table.row_of(task_id)
        if source is None:
            return False
        moved = moved_lines(table.lines, source, target, table.queued_count)
        if moved is None:
            return False
        self.show(moved, range(min(source, target), max(source, target) + 1))
        return True
