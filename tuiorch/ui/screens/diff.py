"""Review a task's changes: its diff against the merge base, live while its agent works, and the word on it
(merge it, or send it back to its agent with a note)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, OptionList
from textual.widgets.option_list import Option

from tuiorch.diffs import TaskDiff
from tuiorch.gitops import GitError
from tuiorch.model.status import COMMANDS, TaskStatus
from tuiorch.orchestrator import CommandError
from tuiorch.ui.format import status_label
from tuiorch.ui.screens.refusal import SaysWhyNot
from tuiorch.ui.widgets.diff_view import SPLIT, UNIFIED, DiffView

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator

#: How often the diff is read again while the task can still change.
REFRESH_SECONDS = 1.0
#: States whose branch or worktree may still change under the screen.
LIVE = frozenset({TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.STUCK, TaskStatus.RESOLVING,
                  TaskStatus.QUEUED, TaskStatus.MERGING, TaskStatus.CHECKING})
#: States the review sends back to the task's agent.
SENDABLE = COMMANDS["review"]


class NoteScreen(ModalScreen[str | None]):
    """One line for the agent: what to change. Dismissed with the note, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note_cancel")]

    def __init__(self, task_label: str) -> None:
        super().__init__()
        self.task_label = task_label

    def compose(self) -> ComposeResult:
        with Vertical(id="note-dialog", classes="dialog"):
            yield Label(f"send task {self.task_label} back to its agent", id="note-title", markup=False)
            yield Label("What should it change? (added to its prompt; its branch keeps the work)",
                        classes="hint", markup=False)
            yield Input(placeholder="e.g. keep the old function name; add a test for the empty case", id="note")
            yield Label("", id="note-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Send back (enter)", variant="primary", id="send")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        note = self.query_one(Input).value.strip()
        if not note:
            self.query_one("#note-error", Label).update("write what the agent should change")
            return
        self.dismiss(note)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DiffScreen(SaysWhyNot, Screen[str | None]):
    """Dismissed with "merge", "sent back" or None (closed)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("v", "toggle_layout", "Layout", id="diff_layout", tooltip="Unified or side by side"),
        Binding("n", "file(1)", "Next file", id="diff_next_file", tooltip="Jump to the next file"),
        Binding("p", "file(-1)", "Prev file", id="diff_previous_file", tooltip="Jump to the previous file"),
        Binding("m", "merge", "Merge", id="diff_merge", tooltip="Merge this finished task now"),
        Binding("g", "send_back", "Send back", id="diff_send_back",
                tooltip="Send the task back to its agent with a note you type"),
        Binding("escape", "close", "Close", id="diff_close", tooltip="Back to the pool"),
    ]

    def __init__(self, orch: Orchestrator, task_id: str, *, auto_merge: bool) -> None:
        super().__init__()
        self.orch = orch
        self.task_id = task_id
        self.auto_merge = auto_merge
        self.diff: TaskDiff | None = None
        self.layout_mode = UNIFIED
        #: The file `n`/`p` last jumped to (a short last file may never reach the top of the view).
        self.current_file = 0
        self._jumped_to = 0

    @property
    def record(self) -> Any:
        return self.orch.records[self.task_id]

    def compose(self) -> ComposeResult:
        task = self.record.task
        with Vertical(id="diff-screen"):
            yield Label(f"diff · task {task.id} {task.title}", id="diff-title", markup=False)
            yield Label("reading the changes…", id="diff-source", markup=False)
            with Horizontal(id="diff-body"):
                yield OptionList(id="diff-files")
                yield DiffView(id="diff-view")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DiffView).focus()
        self.refresh_diff()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        if self.record.status in LIVE or self.diff is None:
            self.refresh_diff()
        else:
            self._show_source()  # the state may have moved on (merged, failed): say so

    @work(exclusive=True, group="diff", exit_on_error=False)
    async def refresh_diff(self) -> None:
        try:
            diff = await self.orch.task_diff(self.task_id)
        except (CommandError, GitError) as exc:
            self.query_one("#diff-source", Label).update(f"cannot read the changes: {exc}")
            return
        if diff == self.diff:
            self._show_source()
            return
        self.diff = diff
        view = self.query_one(DiffView)
        view.show_diff(diff, self.layout_mode)
        files = self.query_one("#diff-files", OptionList)
        highlighted = files.highlighted
        files.clear_options()
        files.add_options(Option(f"+{f.added} −{f.removed} {f.path}", id=str(i)) for i, f in enumerate(diff.files))
        if diff.files:
            files.highlighted = min(highlighted or 0, len(diff.files) - 1)
        self._show_source()
        self.refresh_bindings()

    def _show_source(self) -> None:
        record, diff = self.record, self.diff
        if diff is None:
            return
        live = " · live" if record.status in LIVE else ""
        text = (f"{diff.source} vs {diff.base} · {diff.stat} · {status_label(record.status)}{live} · "
                f"{self.layout_mode}")
        label = self.query_one("#diff-source", Label)
        if str(label.render()) != text:
            label.update(text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.current_file = int(event.option.id)
            self.query_one(DiffView).scroll_to_file(self.current_file)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None and self.query_one("#diff-files").has_focus:
            self.query_one(DiffView).scroll_to_file(int(event.option.id))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return True if self._applies(action) else None  # None: shown greyed out, not hidden

    def _applies(self, action: str) -> bool:
        status = self.record.status
        if action == "merge":
            return status is TaskStatus.FINISHED
        if action == "send_back":
            return status in SENDABLE and not self.orch.is_busy(self.task_id)
        if action == "file":
            return self.diff is not None and len(self.diff.files) > 1
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        status = status_label(self.record.status)
        if action == "merge":
            return f"task {self.task_id} is {status}: only a finished task waiting for your word is merged here"
        if action == "send_back":
            if self.record.status in SENDABLE:
                return f"task {self.task_id} is being worked on"
            return f"task {self.task_id} is {status}: only a finished task or a failed check goes back to its agent"
        if action == "file":
            return "the diff is still being read" if self.diff is None else "only one file changed"
        return None

    # ------------------------------------------------------------------ actions

    def action_toggle_layout(self) -> None:
        view = self.query_one(DiffView)
        top_file = view.file_at(round(view.scroll_offset.y))
        self.layout_mode = SPLIT if self.layout_mode == UNIFIED else UNIFIED
        if self.diff is not None:
            view.show_diff(self.diff, self.layout_mode)
            view.scroll_to_file(top_file)
        self._show_source()

    def action_file(self, step: int) -> None:
        """Jump to the next or previous file: on from the last one jumped to while the view stayed where
        that jump left it (a short last file never reaches the top), else from the file on top."""
        view = self.query_one(DiffView)
        top = round(view.scroll_offset.y)
        current = self.current_file if top == self._jumped_to else view.file_at(top)
        target = current + step
        if self.diff is None or not 0 <= target < len(self.diff.files):
            self.notify("no more files that way", timeout=2)
            return
        self.current_file = target
        self._jumped_to = min(view.file_starts[target], round(view.max_scroll_y))
        view.scroll_to_file(target)
        self.query_one("#diff-files", OptionList).highlighted = target

    def action_merge(self) -> None:
        if self.record.status is not TaskStatus.FINISHED:
            self.notify(f"task {self.task_id} is {status_label(self.record.status)}, not waiting to be merged",
                        severity="warning")
            return
        self.app.run_command(self.orch.approve_merge(self.task_id))  # type: ignore[attr-defined]
        self.notify(f"merging task {self.task_id} into {self.orch.base}")
        self.dismiss("merge")

    def action_send_back(self) -> None:
        task = self.record.task

        def written(note: str | None) -> None:
            if not note:
                return
            try:
                self.orch.send_back(self.task_id, note)
            except CommandError as exc:
                self.notify(str(exc), severity="warning")
                return
            self.notify(f"task {self.task_id} sent back to its agent with your note")
            self.dismiss("sent back")

        self.app.push_screen(NoteScreen(f"{task.id} {task.title}"), written)

    def action_close(self) -> None:
        self.dismiss(None)
