"""The queue: every task with its start order, priority, dependencies, state and why it waits."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from tuiorch.ui.format import ERROR, WARNING, QueueLine

COLUMNS = (("#", "order"), ("id", "id"), ("title", "title"), ("priority", "priority"),
           ("deps", "deps"), ("state", "state"), ("waits on / where", "reason"))
#: Rich styles for a row's note by level: what went wrong must stand out in a long table.
LEVEL_STYLES = {WARNING: "bold yellow", ERROR: "bold red"}


class QueuePane(Vertical):
    DEFAULT_CSS = """
    QueuePane { border: round $primary-darken-2; height: 1fr; }
    QueuePane:focus-within { border: round $accent; }
    QueuePane DataTable { height: 1fr; width: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "queue"
        self._lines: list[QueueLine] = []

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="queue-table")
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table

    @property
    def table(self) -> DataTable[str]:
        return self.query_one(DataTable)

    @property
    def selected_id(self) -> str | None:
        table = self.table
        if not self._lines or table.cursor_row < 0 or table.cursor_row >= len(self._lines):
            return None
        return self._lines[table.cursor_row].id

    def select(self, task_id: str) -> None:
        for index, line in enumerate(self._lines):
            if line.id == task_id:
                self.table.move_cursor(row=index)
                return

    def show(self, lines: Sequence[QueueLine]) -> None:
        """Redraw the rows; the cursor stays on the same task, wherever it moved."""
        if list(lines) == self._lines:
            return
        selected = self.selected_id
        table = self.table
        table.clear()
        for line in lines:
            style = LEVEL_STYLES.get(line.level, "")
            table.add_row(line.order, line.id, line.title, line.priority, line.deps, Text(line.state, style=style),
                          Text(line.reason, style=style), key=line.id)
        self._lines = list(lines)
        queued = sum(1 for line in lines if line.order != "—")
        self.border_title = f"queue · {queued} waiting"
        if selected is not None:
            self.select(selected)
