"""A task's diff, unified or side by side, syntax highlighted: a Line API view that renders only the rows
on screen, so a diff of thousands of lines opens and scrolls at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuiorch.diffs import ADDED, REMOVED, DiffLine, FileDiff, TaskDiff, side_by_side
from tuiorch.ui.highlight import highlight_lines

UNIFIED, SPLIT = "unified", "side by side"
ADDED_BG = "on #1e3a26"
REMOVED_BG = "on #3d1f24"
FILLER_BG = "on #262626"
HEADER_STYLE = "bold reverse"
HUNK_STYLE = "bold #6fb3d2"
NOTE_STYLE = "italic #9a9a9a"
#: Rows drawn as a banner across the view: (indent, style, background across the width).
_BANNERS = {"file": ("", HEADER_STYLE, HEADER_STYLE), "hunk": ("", HUNK_STYLE, ""), "note": ("  ", NOTE_STYLE, "")}
#: A changed line's sign and background, by its kind; context lines have neither.
_MARKS = {ADDED: ("+", ADDED_BG), REMOVED: ("-", REMOVED_BG)}
#: Lines highlighted together: enough for the language's context, few enough to draw a screen at once.
HIGHLIGHT_BLOCK = 200


@dataclass(frozen=True)
class Row:
    """One screen row of the diff: a file's header, a hunk's header, a line (or a pair of them), a note."""

    kind: str  # "file", "hunk", "line", "pair", "note", "blank"
    file: int = -1
    text: str = ""
    line: DiffLine | None = None
    right: DiffLine | None = None


def diff_rows(diff: TaskDiff, layout: str) -> tuple[list[Row], list[int]]:
    """The rows of `diff` in `layout`, and the row where each file's header is."""
    rows: list[Row] = []
    starts: list[int] = []
    for index, file in enumerate(diff.files):
        starts.append(len(rows))
        rows.extend(_file_rows(index, file, layout))
    return rows, starts


def _file_rows(index: int, file: FileDiff, layout: str) -> list[Row]:
    """File number `index`: its heading, a note when no lines are shown, its hunks, then a blank row."""
    rows = [Row("file", index, file_heading(file))]
    if file.binary:
        rows.append(Row("note", index, "binary file: not shown"))
    elif not file.hunks and file.status != "renamed":
        rows.append(Row("note", index, "no lines to show"))
    for hunk in file.hunks:
        rows.append(Row("hunk", index, hunk.header))
        rows.extend(_hunk_rows(index, hunk.lines, layout))
    if file.truncated:
        rows.append(Row("note", index, "… more changes than the screen shows (the counts are whole)"))
    rows.append(Row("blank", index))
    return rows


def _hunk_rows(index: int, lines: Sequence[DiffLine], layout: str) -> list[Row]:
    if layout == SPLIT:
        return [Row("pair", index, line=left, right=right) for left, right in side_by_side(lines)]
    return [Row("line", index, line=line) for line in lines]


def file_heading(file: FileDiff) -> str:
    name = f"{file.old_path} → {file.path}" if file.old_path else file.path
    return f" {name}  +{file.added} −{file.removed}  ({file.status}) "


class DiffView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    DiffView { height: 1fr; width: 1fr; background: $surface; overflow-x: hidden; }
    DiffView:focus { background-tint: $foreground 3%; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.diff = TaskDiff(base="", source="")
        self.layout_mode = UNIFIED
        self.rows: list[Row] = []
        self.file_starts: list[int] = []
        self._highlighted: dict[tuple[int, str, int], list[Text]] = {}
        self._side_lines: dict[tuple[int, str], tuple[list[str], dict[int, int]]] = {}
        #: Rendered rows by (row, width); cleared whenever the rows or the width change.
        self._strips: dict[tuple[int, int], Strip] = {}
        self._digits = 3

    def show_diff(self, diff: TaskDiff, layout: str | None = None) -> None:
        """Show `diff` (in `layout`), keeping the scroll position when only the content changed."""
        if layout is not None:
            self.layout_mode = layout
        if diff is not self.diff:
            self._highlighted.clear()
            self._side_lines.clear()
        self.diff = diff
        self.rows, self.file_starts = diff_rows(diff, self.layout_mode)
        self._digits = gutter_digits(diff)
        self._strips.clear()
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.rows))
        self.refresh()

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.rows))

    def file_at(self, row: int) -> int:
        """The index of the file whose rows include `row` (the top row on screen, say)."""
        current = 0
        for index, start in enumerate(self.file_starts):
            if start <= row:
                current = index
        return current

    def scroll_to_file(self, index: int) -> None:
        if 0 <= index < len(self.file_starts):
            self.scroll_to(y=self.file_starts[index], animate=False)

    # ------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        _scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= len(self.rows) or width <= 0:
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get((row, width))
        if strip is None:
            text = self._row_text(self.rows[row], width)
            strip = Strip(list(text.render(self.app.console))).crop_extend(0, width, self.rich_style)
            self._strips[(row, width)] = strip
        return strip

    def _row_text(self, row: Row, width: int) -> Text:
        if (banner := _BANNERS.get(row.kind)) is not None:
            indent, style, tint = banner
            return _fit(Text(indent + row.text, style=style), width, tint)
        if row.kind == "blank":
            return Text("")
        digits = self._digits
        if row.kind == "line" and row.line is not None:
            line = row.line
            return self._marked(row.file, line, f"{_num(line.old, digits)} {_num(line.new, digits)}", width)
        half = max(1, (width - 1) // 2)
        left = self._side(row.file, row.line, "old", half, digits)
        right = self._side(row.file, row.right, "new", width - half - 1, digits)
        return left + Text("│", style="dim") + right

    def _side(self, file: int, line: DiffLine | None, side: str, width: int, digits: int) -> Text:
        if line is None:
            return _fit(Text(""), width, FILLER_BG)
        return self._marked(file, line, _num(line.old if side == "old" else line.new, digits), width)

    def _marked(self, file: int, line: DiffLine, gutter: str, width: int) -> Text:
        """A diff line: its line number(s), its +/- sign, its code; tinted by whether it was added or removed."""
        sign, tint = _MARKS.get(line.kind, (" ", ""))
        text = Text()
        text.append(f"{gutter} {sign} ", style="dim")
        text.append_text(self._code(file, line))
        return _fit(text, width, tint)

    def _code(self, file_index: int, line: DiffLine) -> Text:
        """The line highlighted as its file's language. Each side of a file is highlighted a block of
        HIGHLIGHT_BLOCK lines at a time, when a row of that block is first drawn: a diff of tens of thousands
        of lines opens at once."""
        side, number = ("new", line.new) if line.new is not None else ("old", line.old)
        texts, positions = self._lines_of(file_index, side)
        position = positions.get(number) if number is not None else None
        if position is None:
            return Text(line.text)
        block = position // HIGHLIGHT_BLOCK
        return self._block(file_index, side, block, texts)[position % HIGHLIGHT_BLOCK].copy()

    def _lines_of(self, file_index: int, side: str) -> tuple[list[str], dict[int, int]]:
        """One side's lines of a file and their positions by line number (see _side_lines), kept."""
        lines = self._side_lines.get((file_index, side))
        if lines is None:
            lines = self._side_lines[(file_index, side)] = _side_lines(self.diff.files[file_index], side)
        return lines

    def _block(self, file_index: int, side: str, block: int, texts: list[str]) -> list[Text]:
        """Block number `block` of one side's lines, highlighted the first time it is asked for."""
        key = (file_index, side, block)
        highlighted = self._highlighted.get(key)
        if highlighted is None:
            start = block * HIGHLIGHT_BLOCK
            highlighted = highlight_lines(self.diff.files[file_index].path, texts[start : start + HIGHLIGHT_BLOCK])
            self._highlighted[key] = highlighted
        return highlighted


def _side_lines(file: FileDiff, side: str) -> tuple[list[str], dict[int, int]]:
    """One side's lines of a file's hunks in order, and line number -> position among them."""
    texts: list[str] = []
    positions: dict[int, int] = {}
    for hunk in file.hunks:
        for line in hunk.lines:
            number = line.old if side == "old" else line.new
            if number is not None and number not in positions:
                positions[number] = len(texts)
                texts.append(line.text)
    return texts, positions


def gutter_digits(diff: TaskDiff) -> int:
    """Room for the biggest line number in the diff."""
    biggest = max((max(line.old or 0, line.new or 0) for file in diff.files for hunk in file.hunks
                   for line in hunk.lines), default=0)
    return max(3, len(str(biggest)))


def _num(value: int | None, digits: int) -> str:
    return f"{value:>{digits}}" if value is not None else " " * digits


def _fit(text: Text, width: int, tint: str = "") -> Text:
    """`text` cut or padded to exactly `width` cells, its background tinted across the whole width."""
    text = text.copy()
    text.truncate(width, overflow="ellipsis", pad=True)
    if tint:
        text.stylize(tint, 0, len(text))
    return text

