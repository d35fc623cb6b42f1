"""Every task with its end state, duration, merge commit, tokens and cost, and the commits that landed on main."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import work
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
        changes: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        """`changes(task id)`: the task's files and lines changed ("2 files +10 −3"), read after opening."""
        super().__init__()
        self.title_text = title
        self.task_rows = tasks
        self.commit_rows = commits
        self.changes = changes

    def compose(self) -> ComposeResult:
        with Vertical(id="summary-dialog", classes="dialog"):
            yield Label(self.title_text, id="summary-title", markup=False)
            tasks: DataTable[str] = DataTable(id="summary-tasks", cursor_type="row", zebra_stripes=True)
            for label in ("id", "title", "state", "duration", "changes", "merge commit", "tokens · cost", "note"):
                tasks.add_column(label, key=label)
            for row in self.task_rows:
                tasks.add_row(*row[:4], "…" if self.changes else "", *row[4:], key=row[0])
            yield tasks
            yield Label(f"commits on main this run ({len(self.commit_rows)})", classes="section", markup=False)
            commits: DataTable[str] = DataTable(id="summary-commits", cursor_type="row", zebra_stripes=True)
            commits.add_column("commit", key="commit")
            commits.add_column("subject", key="subject")
            for sha, subject in self.commit_rows:
                commits.add_row(sha, subject)
            yield commits
            yield Label("esc close", classes="hint")

    def on_mount(self) -> None:
        if self.changes is not None:
            self._read_changes()

    @work(exclusive=True, group="summary-changes", exit_on_error=False)
    async def _read_changes(self) -> None:
        """Files and lines changed per task, filled in as git answers (a summary opens at once)."""
        assert self.changes is not None
        table = self.query_one("#summary-tasks", DataTable)
        for row in self.task_rows:
            try:
                text = await self.changes(row[0])
            except Exception as exc:  # one unreadable task must not leave the others blank
                text = f"? ({type(exc).__name__})"
            table.update_cell(row[0], "changes", text, update_width=True)
