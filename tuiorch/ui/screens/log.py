"""The full log file of a task, following new lines while the agent runs."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Log

FOLLOW_SECONDS = 0.25
#: Read at most this much per poll so a huge log never stalls the UI.
CHUNK_BYTES = 1 << 20


class LogScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,l,q", "dismiss", "Close", id="log_close")]

    def __init__(self, task_label: str, log_path: Path | None, root: Path | None = None) -> None:
        super().__init__()
        self.task_label = task_label
        self.log_path = log_path
        #: The repository: the log's path is shown relative to it (.git/tuiorch/logs/1.log).
        self.root = root
        self._offset = 0
        self._partial = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="log-dialog", classes="dialog"):
            where = "no log yet"
            if self.log_path is not None:
                try:
                    where = str(self.log_path.relative_to(self.root)) if self.root else str(self.log_path)
                except ValueError:
                    where = str(self.log_path)
            yield Label(f"log · {self.task_label} · {where}", id="log-title", markup=False)
            yield Log(id="full-log", max_lines=None, auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self._follow()
        self.set_interval(FOLLOW_SECONDS, self._follow)

    def _follow(self) -> None:
        if self.log_path is None or not self.log_path.exists():
            return
        with self.log_path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read(CHUNK_BYTES)
        if not data:
            return
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        if lines:
            self.query_one(Log).write_lines(lines)
        if len(data) == CHUNK_BYTES:
            self.call_later(self._follow)
