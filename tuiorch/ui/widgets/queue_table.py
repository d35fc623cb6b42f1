"""A virtualised table of queue lines: only the rows on screen are rendered, so 10,000 tasks cost what 40 do.

Textual's DataTable re-renders every visible cell and rebuilds per-row caches over all rows whenever one cell
changes (about 60 ms at 10,000 rows), so a reorder could never reach the screen within a frame. Here rows are
positional: `set_lines` compares the new lines with the old ones and repaints only when a visible row changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuiorch.ui.format import ERROR, NONE, WARNING, QueueLine

#: (header label, QueueLine field) per column, left to right.
COLUMNS = (("#", "order"), ("id", "id"), ("title", "title"), ("priority", "priority"),
           ("deps", "deps"), ("state", "state"), ("waits on / where", "reason"))
FIELDS = tuple(field for _label, field in COLUMNS)
#: Columns coloured by the line's level: what went wrong must stand out in a long table.
LEVEL_COLUMNS = frozenset({"state", "reason"})
LEVEL_STYLES = {WARNING: Style.parse("bold yellow"), ERROR: Style.parse("bold red")}
#: Blank cells either side of a cell's text, as DataTable draws them.
CELL_PADDING = 1
HEADER_HEIGHT = 1


def column_widths(lines: Sequence[QueueLine]) -> list[int]:
    """Each column's text width: its widest cell or its label."""
    return [_column_width(label, lines, index) for (label, _field), index in zip(COLUMNS, _FIELD_INDEX, strict=True)]


def _column_width(label: str, lines: Sequence[QueueLine], index: int) -> int:
    # Many cells repeat (priority, state, deps): measure each distinct text once.
    texts = {line[index] for line in lines}
    return max([cell_len(label), *map(cell_len, texts)])


_FIELD_INDEX = tuple(QueueLine._fields.index(field) for field in FIELDS)
HEADER_CELLS = [label for label, _field in COLUMNS]
#: Per level: the style of each column it colours, by column number.
_LEVEL_CELLS = {
    level: {column: style for column, field in enumerate(FIELDS) if field in LEVEL_COLUMNS}
    for level, style in LEVEL_STYLES.items()
}
#: Zebra stripes: the component class of an even row, of an odd one.
_STRIPES = ("queue-table--even-row", "queue-table--odd-row")


def _changed_rows(old: Sequence[QueueLine], new: Sequence[QueueLine], rows: range | None) -> list[int]:
    """The rows whose line differs; only among `rows` when given and the row count stays."""
    # Rows are positional, so a reorder changes the few rows between the old and new places.
    candidates = range(min(len(old), len(new))) if rows is None or len(old) != len(new) else rows
    return [row for row in candidates if old[row] != new[row]]


def _queued(lines: Sequence[QueueLine], rows: list[int]) -> int:
    """How many of `rows` hold a task waiting to start (numbered in the "#" column)."""
    return sum(1 for row in rows if lines[row].order != NONE)


class QueueTable(ScrollView, can_focus=True):
    """Rows of QueueLine with a row cursor; the header stays put while the rows scroll."""

    COMPONENT_CLASSES = {
        "queue-table--header",
        "queue-table--cursor",
        "queue-table--even-row",
        "queue-table--odd-row",
    }
    BINDINGS = [
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First row", show=False),
        Binding("end,ctrl+end", "last", "Last row", show=False),
    ]
    # The same look as Textual's DataTable (zebra stripes, block cursor), which this replaces.
    DEFAULT_CSS = """
    QueueTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .queue-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .queue-table--header { background-tint: $foreground 5%; }
        }
        &:dark > .queue-table--even-row { background: $surface-darken-1 40%; }
        & > .queue-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .queue-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .queue-table--even-row { background: $surface-lighten-1 50%; }
        & > .queue-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class _RowMessage(Message):
        def __init__(self, table: QueueTable, row: int, task_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.row = row
            self.task_id = task_id

        @property
        def control(self) -> QueueTable:
            return self.table

    class RowHighlighted(_RowMessage):
        """The cursor moved to another row (or the row under it changed task)."""

    class RowSelected(_RowMessage):
        """The row under the cursor was clicked again."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.lines: tuple[QueueLine, ...] = ()
        self._row_of: dict[str, int] = {}
        self._widths = [cell_len(label) for label, _field in COLUMNS]
        self._cursor = 0
        #: The user moved the cursor (keys or mouse): it stays on their task from then on.
        self.user_moved = False
        #: Rows of tasks waiting to start (numbered in the "#" column), kept as rows change.
        self.queued_count = 0
        #: Rich styles of the component classes, read once per repaint (they change with focus and theme).
        self._styles: dict[str, Style] = {}

    # ------------------------------------------------------------------ reading

    @property
    def row_count(self) -> int:
        return len(self.lines)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def row_of(self, task_id: str) -> int | None:
        return self._row_of.get(task_id)

    def line_of(self, task_id: str) -> QueueLine | None:
        row = self._row_of.get(task_id)
        return None if row is None else self.lines[row]

    @property
    def cursor_task(self) -> str | None:
        return self.lines[self._cursor].id if 0 <= self._cursor < len(self.lines) else None

    # ------------------------------------------------------------------ writing

    def set_lines(self, lines: Sequence[QueueLine], rows: range | None = None) -> list[int]:
        """Show `lines`; returns the rows whose content changed (the cursor stays on its row number).

        `rows`, when given, holds every row that may differ (the caller knows, e.g. a move): the others are
        not compared, which at 10,000 rows is most of the cost.
        """
        new = tuple(lines)
        old = self.lines
        changed = _changed_rows(old, new, rows)
        if not changed and len(old) == len(new):
            self.lines = new  # equal rows; keep the caller's tuple so identity checks stay cheap
            return []
        common = min(len(old), len(new))
        gone = [*changed, *range(common, len(old))]
        came = [*changed, *range(common, len(new))]
        self._reindex(old, new, gone, came)
        self.lines = new
        self._repaint(old, new, changed, gone, came)
        self._cursor_after(changed)
        return came

    def _reindex(self, old: Sequence[QueueLine], new: Sequence[QueueLine], gone: list[int], came: list[int]) -> None:
        """Keep the row of each task and the count of queued rows up to date with the rows that changed."""
        for row in gone:
            if self._row_of.get(old[row].id) == row:
                del self._row_of[old[row].id]
        for row in came:
            self._row_of[new[row].id] = row
        self.queued_count += _queued(new, came) - _queued(old, gone)

    def _repaint(self, old: Sequence[QueueLine], new: Sequence[QueueLine], changed: list[int], gone: list[int],
                 came: list[int]) -> None:
        """Redraw what the change touched: everything when a width or the row count changed, else the
        changed rows on screen."""
        if self._update_widths(old, new, gone, came):
            return
        if len(old) != len(new):
            self._update_virtual_size()
            self.refresh()
            return
        for row in changed:
            if self._is_visible(row):
                self.refresh_line(row + HEADER_HEIGHT)

    def _cursor_after(self, changed: list[int]) -> None:
        """The cursor stays on its row number: back onto the last row if that went, announced if its task changed."""
        if self._cursor >= len(self.lines):
            self.move_cursor(max(0, len(self.lines) - 1))
        elif self._cursor in changed:
            self.post_message(self.RowHighlighted(self, self._cursor, self.cursor_task))

    def _update_widths(self, old: Sequence[QueueLine], new: Sequence[QueueLine],
                       gone_rows: list[int], new_rows: list[int]) -> bool:
        """Fit the columns to the changed cells; True when a width changed (and all was redrawn)."""
        widths = list(self._widths)
        for column, index in enumerate(_FIELD_INDEX):
            grown = max((cell_len(new[row][index]) for row in new_rows), default=0)
            gone = max((cell_len(old[row][index]) for row in gone_rows), default=0)
            # The column can only narrow when a cell as wide as it went and none as wide came (a move
            # brings its cells back, so it never measures the whole column).
            if gone >= widths[column] > grown:
                widths[column] = _column_width(COLUMNS[column][0], new, index)
            else:
                widths[column] = max(widths[column], grown)
        if widths == self._widths:
            return False
        self._widths = widths
        self._update_virtual_size()
        self.refresh()
        return True

    def _update_virtual_size(self) -> None:
        width = sum(self._widths) + 2 * CELL_PADDING * len(self._widths)
        self.virtual_size = Size(width, len(self.lines) + HEADER_HEIGHT)

    # ------------------------------------------------------------------ cursor

    def move_cursor(self, row: int) -> None:
        row = max(0, min(row, len(self.lines) - 1)) if self.lines else 0
        before = self._cursor
        self._cursor = row
        self._scroll_to_cursor()
        if row != before:
            self.refresh_line(before + HEADER_HEIGHT)
            self.refresh_line(row + HEADER_HEIGHT)
            self.post_message(self.RowHighlighted(self, row, self.cursor_task))

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - HEADER_HEIGHT)

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_y)
        height = self._body_height()
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True)

    def _is_visible(self, row: int) -> bool:
        top = round(self.scroll_y)
        return top <= row < top + self._body_height()

    def action_cursor_up(self) -> None:
        self.user_moved = True
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.user_moved = True
        self.move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        self.user_moved = True
        self.move_cursor(self._cursor - self._body_height())

    def action_page_down(self) -> None:
        self.user_moved = True
        self.move_cursor(self._cursor + self._body_height())

    def action_first(self) -> None:
        self.user_moved = True
        self.move_cursor(0)

    def action_last(self) -> None:
        self.user_moved = True
        self.move_cursor(len(self.lines) - 1)

    def on_resize(self, _event: events.Resize) -> None:
        self._scroll_to_cursor()

    async def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < HEADER_HEIGHT:
            return
        row = round(self.scroll_y) + offset.y - HEADER_HEIGHT
        if not 0 <= row < len(self.lines):
            return
        self.user_moved = True
        if row == self._cursor:
            self.post_message(self.RowSelected(self, row, self.lines[row].id))
        else:
            self.move_cursor(row)

    # ------------------------------------------------------------------ rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, component: str) -> Style:
        if (style := self._styles.get(component)) is None:
            style = self._styles[component] = self.get_component_rich_style(component)
        return style

    def render_lines(self, crop):  # noqa: ANN001, ANN201 - Widget's signature
        self._styles.clear()  # focus and theme change the component styles; read them once per repaint
        self._styles["base"] = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self._styles.get("base") or self.rich_style
        if y < HEADER_HEIGHT:
            return self._strip(HEADER_CELLS, base + self._style("queue-table--header"), {}, scroll_x, width, base)
        row = scroll_y + y - HEADER_HEIGHT
        if row >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[row]
        component = "queue-table--cursor" if row == self._cursor else _STRIPES[row % 2]
        cells = [line[index] for index in _FIELD_INDEX]
        return self._strip(cells, base + self._style(component), _LEVEL_CELLS.get(line.level, {}), scroll_x, width, base)

    def _strip(self, cells: list[str], row_style: Style, extra: dict[int, Style], scroll_x: int,
               width: int, base: Style) -> Strip:
        """One row's cells cropped to the visible columns; the row's style runs to the right edge, as in DataTable."""
        pad = " " * CELL_PADDING
        segments = []
        for column, (text, column_width) in enumerate(zip(cells, self._widths, strict=True)):
            style = row_style + extra[column] if column in extra else row_style
            fill = " " * (column_width - cell_len(text))
            segments.append(Segment(pad + text + fill + pad, style))
        strip = Strip(segments)
        return strip.crop_extend(scroll_x, scroll_x + width, row_style)
