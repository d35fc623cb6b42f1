"""Every task with its end state, duration, merge commit, tokens and cost, and the commits that landed on main."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class SummaryScreen(ModalScreen[None]):
    """Built from plain rows so it renders the same data the headless report prints."""

    BINDINGS = [Binding("escape,s", "dismiss", "Close", id="summary_close")]

    def __init__(
        self,
        title: str,
        tasks: list[tuple[str, str, str, str, str, str, str]],
        commits: list[tuple[str, str]],
    ) -> None:
        super().__init__()
        self.title_text = title
        self.task_rows = tasks
        self.commit_rows = commits

    def compose(self) -> ComposeResult:
        with Vertical(id="summary-dialog", classes="dialog"):
            yield Label(self.title_text, id="summary-title", markup=False)
            tasks: DataTable[str] = DataTable(id="summary-tasks", cursor_type="row", zebra_stripes=True)
            for label in ("id", "title", "state", "duration", "merge commit", "tokens · cost", "note"):
                tasks.add_column(label, key=label)
            for row in self.task_rows:
                tasks.add_row(*row, key=row[0])
            yield tasks
            yield Label(f"commits on main this run ({len(self.commit_rows)})", classes="section", markup=False)
            commits: DataTable[str] = DataTable(id="summary-commits", cursor_type="row", zebra_stripes=True)
            commits.add_column("commit", key="commit")
            commits.add_column("subject", key="subject")
            for sha, subject in self.commit_rows:
                commits.add_row(sha, subject)
            yield commits
            yield Label("esc close", classes="hint")
