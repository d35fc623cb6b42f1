"""`?`: every key of the screen underneath, as bound now (a `[keymap]` rebinding shows), and what it does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


@dataclass(frozen=True)
class KeyRow:
    keys: str
    name: str
    help: str
    #: False: the key does nothing for the current selection (shown dimmed).
    applies: bool = True


def key_rows(
    app: App[object],
    bindings: Iterable[Binding],
    keymap: Mapping[str, str],
    applies: Mapping[str, bool] | None = None,
) -> list[KeyRow]:
    """One row per binding: its keys after `keymap` (binding id -> keys), as the footer writes them."""
    rows: list[KeyRow] = []
    seen: set[str] = set()
    for binding in bindings:
        name = binding.id or binding.action
        if name in seen:
            continue
        seen.add(name)
        keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
        shown = " ".join(app.get_key_display(replace(binding, key=key.strip())) for key in keys.split(","))
        rows.append(
            KeyRow(shown, binding.description, binding.tooltip, True if applies is None else applies.get(name, True))
        )
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help_close")]

    def __init__(self, title: str, rows: list[KeyRow]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Label(self.title_text, id="help-title", markup=False)
            # A Rich table wraps what a key does onto more lines, so every word reads at 80 columns too.
            with VerticalScroll(id="help-keys", can_focus=True):
                yield Static(self.table(), id="help-table")
            yield Label("dimmed: not for this task now · [keymap] in tuiorch.toml rebinds · esc",
                        classes="hint", markup=False)

    def table(self) -> Table:
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("key", no_wrap=True)
        table.add_column("does", no_wrap=True)
        table.add_column("", ratio=1)
        for row in self.rows:
            style = "" if row.applies else "dim"
            table.add_row(Text(row.keys, style=style or "bold"), Text(row.name, style=style),
                          Text(row.help, style=style))
        return table

    def on_mount(self) -> None:
        self.query_one("#help-keys").focus()
