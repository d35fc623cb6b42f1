"""A conflicting hunk drawn for the conflict screen: context above, the sides aligned line by line in
columns (the merge base between them on request), context below; a whole-file conflict as both files."""

from __future__ import annotations

import itertools

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuiorch.hunks import BOTH, EDITED, OURS, THEIRS, ConflictFile, Key, Resolution, context, hunks_of
from tuiorch.ui.highlight import highlight_lines

#: Clean lines shown above and below a hunk.
CONTEXT_LINES = 3

SIDE_STYLES = {OURS: "on #1d2b45", THEIRS: "on #1e3a26", "base": "on #3a3420"}
#: The sides a choice leaves out of the file (drawn dim); an edit may have kept anything.
_LEFT_OUT: dict[str | None, tuple[str, ...]] = {None: (), OURS: (THEIRS,), THEIRS: (OURS,), BOTH: (), EDITED: ()}

#: A column of the hunk view: its title, the side it shows, and that side's lines.
Column = tuple[str, str, tuple[str, ...]]


def describe_choice(choice: str | None, labels: tuple[str, str]) -> str:
    ours, theirs = labels
    return {
        None: "open",
        OURS: f"took {ours}",
        THEIRS: f"took {theirs}",
        BOTH: f"took both ({ours} first)",
        EDITED: "resolved in the editor",
    }[choice]


def hunk_view(resolution: Resolution, key: Key, show_base: bool) -> RenderableType:
    """The hunk at `key`: context above, the sides aligned line by line in columns, context below."""
    file = resolution.files[key[0]]
    if not file.textual:
        return _whole_file_view(file, resolution.labels)
    hunk = hunks_of(file.segments)[key[1]]
    before, after = context(file.segments, key[1], CONTEXT_LINES)
    ours_label, theirs_label = resolution.labels
    columns: list[Column] = [
        (f"{ours_label} (o)", OURS, hunk.ours),
        ("merge base", "base", hunk.base),
        (f"{theirs_label} (t)", THEIRS, hunk.theirs),
    ]
    table = _sides_table(columns if show_base else columns[::2], file.path, resolution.choice(key))
    return Group(_context_text(before, file.path), table, _context_text(after, file.path))


def _whole_file_view(file: ConflictFile, labels: tuple[str, str]) -> RenderableType:
    """A conflict on the whole file (binary, deleted on one side…): each side's contents."""
    ours_label, theirs_label = labels
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
    table.add_column(f"{ours_label} (o)", ratio=1, style=SIDE_STYLES[OURS])
    table.add_column(f"{theirs_label} (t)", ratio=1, style=SIDE_STYLES[THEIRS])
    table.add_row(Text(_clip(file.ours)), Text(_clip(file.theirs)))
    note = Text(f"{file.kind} conflict: keep one side of the whole file", style="italic")
    return Group(note, table)


def _sides_table(columns: list[Column], path: str, choice: str | None) -> Table:
    """The sides of a hunk next to each other; a side the choice left out is dim."""
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False, pad_edge=False)
    for title, side, _lines in columns:
        dim = "dim " if side in _LEFT_OUT[choice] else ""
        table.add_column(title, ratio=1, no_wrap=True, overflow="ellipsis",
                         header_style="bold " + dim, style=dim + SIDE_STYLES[side])
    rendered = [highlight_lines(path, list(lines)) for _t, _s, lines in columns]
    for row in itertools.zip_longest(*rendered, fillvalue=Text("")):
        table.add_row(*row)
    # An empty side: the hunk adds lines on one side only, or deletes them on one.
    if not all(lines for _t, _s, lines in columns):
        table.add_row(*[Text("") if lines else Text("(no lines)", style="dim italic") for _t, _s, lines in columns])
    return table


def _clip(text: str | None, lines: int = 200) -> str:
    if text is None:
        return "(deleted)"
    parts = text.splitlines()
    return "\n".join(parts[:lines]) + (f"\n… {len(parts) - lines} more lines" if len(parts) > lines else "")


def _context_text(lines: tuple[str, ...], path: str) -> Text:
    """Clean lines around a hunk, marked as context by a bar in the gutter; one screen row each."""
    out = Text(no_wrap=True, overflow="ellipsis")
    for line in highlight_lines(path, list(lines)):
        out.append("│ ", style="dim")
        out.append_text(line)
        out.append("\n")
    out.rstrip()
    return out
