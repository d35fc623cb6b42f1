"""`?`: every key of the screen underneath, as bound now (a `[keymap]` rebinding shows), and what it does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


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
            table: DataTable[Text] = DataTable(id="help-keys", cursor_type="row", zebra_stripes=True)
            table.add_column("key", key="key")
            table.add_column("does", key="does")
            table.add_column("", key="help")
            for row in self.rows:
                style = "" if row.applies else "dim"
                table.add_row(Text(row.keys, style=style or "bold"), Text(row.name, style=style),
                              Text(row.help, style=style))
            yield table
            yield Label("dimmed: not for the selected task now · rebind: [keymap] in tuiorch.toml · esc close",
                        classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
