"""One line at the top: repo, pool size, how many tasks are running, queued, merged, failed; what the run cost."""

from __future__ import annotations

from textual.widgets import Static

from tuiorch.ui.format import PoolCounts, header_text


class PoolHeader(Static):
    DEFAULT_CSS = """
    PoolHeader {
        dock: top;
        height: 1;
        width: 1fr;
        padding: 0 1;
        background: $panel;
        color: $text;
        text-style: bold;
    }
    """

    def __init__(self, repo_name: str, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self.repo_name = repo_name
        self._shown = ""
        self._counts: PoolCounts | None = None
        self._spent = ""

    def show(self, counts: PoolCounts, spent: str = "") -> None:
        """`spent`: the run's tokens and cost so far ("" when no agent reports them)."""
        self._counts, self._spent = counts, spent
        # Told briefly when the terminal is narrow.
        text = header_text(self.repo_name, counts, spent, width=self.size.width or None)
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)  # one fixed line: nothing around it moves

    def on_resize(self) -> None:
        if self._counts is not None:
            self.show(self._counts, self._spent)
