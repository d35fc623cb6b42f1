"""Conflict triage, hunk by hunk: each conflicting hunk with a few lines of context, the base branch's
side and the task's aligned next to each other (the merge base on a key), and a choice per hunk.

The hunk logic is the engine's (tuiorch.hunks); this screen shows a Resolution and records choices in it.
When every hunk has one, the engine commits the resolution on the task branch and retries the merge.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tuiorch.gitops import GitError
from tuiorch.hunks import Key, Resolution
from tuiorch.model.status import IN_CONFLICT
from tuiorch.orchestrator import CommandError
from tuiorch.ui.format import has_conflict_markers
from tuiorch.ui.hunk_view import describe_choice, hunk_view
from tuiorch.ui.screens.confirm import ConfirmScreen
from tuiorch.ui.screens.refusal import SaysWhyNot

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator

#: Result of the modal: what became of the conflict.
RESOLVED, REQUEUED, AGENT, LATER, GONE = "resolved", "requeued", "agent", "later", "gone"
#: How often the modal looks whether its task left the conflict (merged by the agent, requeued…).
WATCH_SECONDS = 0.5

#: Actions about the hunk on screen: they wait for the conflict to be read and the last choice to be done.
_ON_A_HUNK = frozenset({"take", "take_file", "move", "edit", "toggle_base", "undo"})


def _in_file(keys: list[Key], file_index: int) -> list[Key]:
    return [key for key in keys if key[0] == file_index]


def _applies(action: str, parameters: tuple[object, ...], resolution: Resolution, key: Key) -> bool:
    """Whether an action about the hunk at `key` does anything."""
    if action == "take":
        return not resolution.allowed(key, str(parameters[0]))
    if action == "edit":
        return not resolution.files[key[0]].binary
    if action == "undo":
        return bool(resolution.history)
    return True


class ConflictScreen(SaysWhyNot, ModalScreen[str]):
    BINDINGS = [
        Binding("o", "take('ours')", "Base", id="take_ours", tooltip="This hunk: keep the base branch's side"),
        Binding("t", "take('theirs')", "Task", id="take_theirs", tooltip="This hunk: keep the task's side"),
        Binding("b", "take('both')", "Both", id="take_both", tooltip="This hunk: both sides, the base branch's first"),
        Binding("n", "move(1)", "Next", id="next_hunk", tooltip="Next conflicting hunk (across files)"),
        Binding("p", "move(-1)", "Prev", id="previous_hunk", tooltip="Previous conflicting hunk"),
        Binding("u", "undo", "Undo", id="undo", tooltip="Take back the last choice"),
        Binding("e", "edit", "Edit", id="edit", tooltip="Open the file in $EDITOR at this hunk"),
        Binding("g", "agent", "Agent", id="hand_to_agent", tooltip="Let the resolver agent resolve every hunk"),
        # The status line names these three: the footer keeps its room for the keys used on every hunk.
        Binding("O", "take_file('ours')", "File: base", id="take_file_ours", show=False,
                tooltip="Every open hunk of this file: the base branch's side"),
        Binding("T", "take_file('theirs')", "File: task", id="take_file_theirs", show=False,
                tooltip="Every open hunk of this file: the task's side"),
        Binding("a", "toggle_base", "Merge base", id="show_base", show=False,
                tooltip="Show or hide the merge base's lines"),
        Binding("R", "requeue", "Drop", id="requeue",
                tooltip="Drop the task's branch (asks first) and redo the task from the base branch"),
        Binding("escape", "later", "Later", id="later", tooltip="Close; your choices are kept for later"),
    ]

    def __init__(self, orch: Orchestrator, task_id: str, saved: dict[str, Resolution]) -> None:
        """`saved` is the app's memory (task -> Resolution), so reopening keeps the choices made."""
        super().__init__()
        self.orch = orch
        self.task_id = task_id
        self.saved = saved
        self.resolution: Resolution | None = saved.get(task_id)
        self.current: Key | None = None
        self.show_base = False
        self.busy = False
        self.load_error = ""

    # -------------------------------------------------------------- state

    @property
    def record(self) -> Any:
        return self.orch.records[self.task_id]

    @property
    def agent_at_work(self) -> bool:
        return self.orch.is_busy(self.task_id)

    # -------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        task = self.record.task
        branch = self.record.branch or "task"
        with Vertical(id="conflict-dialog", classes="dialog"):
            yield Label(f"conflict · task {task.id} {task.title} · {self.orch.base} ⟵ {branch}",
                        id="conflict-title", markup=False)
            yield Label("reading the conflict…", id="conflict-where", markup=False)
            with VerticalScroll(id="conflict-hunk"):
                yield Static("", id="conflict-view")
            yield Label("", id="conflict-status", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if not self.query("#conflict-view"):
            return  # pushed while the app was closing: nothing was composed, nothing to show
        self.query_one("#conflict-hunk").focus()
        self.set_interval(WATCH_SECONDS, self._watch_task)
        self.load()

    @work(exclusive=True, group="conflict-load", exit_on_error=False)
    async def load(self) -> None:
        """(Re)read the conflict from the engine; choices made on the same two tips are kept."""
        if self.agent_at_work:
            self._show_agent_at_work()
            return
        try:
            fresh = await self.orch.conflict_resolution(self.task_id)
        except (CommandError, GitError) as exc:
            self.load_error = str(exc)  # not read again by itself: say it once, let the user decide
            self.query_one("#conflict-where", Label).update(f"cannot read the conflict: {exc}")
            self.refresh_bindings()
            return
        self.load_error = ""
        self.resolution = self.saved[self.task_id] = resolution = self._carried_over(fresh)
        self.current = next(iter(resolution.open_keys() or resolution.keys), None)
        self.show()

    def _carried_over(self, fresh: Resolution) -> Resolution:
        """The resolution to show: the one already made while both tips stay the same, else the fresh one."""
        old = self.resolution
        if old is None:
            return fresh
        if (old.base_tip, old.task_tip) == (fresh.base_tip, fresh.task_tip):
            return old
        if old.history:
            self.notify(f"{self.orch.base} or the task moved since; the conflict is read again", severity="warning")
        return fresh

    def _show_agent_at_work(self) -> None:
        self.query_one("#conflict-where", Label).update("the resolver agent is working on this conflict")
        self.query_one("#conflict-view", Static).update(
            Text("Its output is in the task's pane and log (l). Wait for it, or close this (esc).", style="italic")
        )
        self.refresh_bindings()

    def _on_screen(self) -> tuple[Resolution, Key] | None:
        """The conflict and the hunk shown; None while the conflict is being read."""
        if self.resolution is None or self.current is None:
            return None
        return self.resolution, self.current

    def show(self) -> None:
        """Draw the current hunk, where it is, and how many are left."""
        if (shown := self._on_screen()) is None:
            return
        resolution, key = shown
        file = resolution.files[key[0]]
        keys = resolution.keys
        where = [file.path, file.kind, f"hunk {keys.index(key) + 1} of {len(keys)}"]
        if len(resolution.files) > 1:
            in_file = _in_file(keys, key[0])
            where.append(f"file {key[0] + 1} of {len(resolution.files)} ({len(in_file)} hunks)")
        if file.textual:
            where.append(f"line {resolution.display_line(key):,}")
        where.append(describe_choice(resolution.choice(key), resolution.labels))
        self.query_one("#conflict-where", Label).update(" · ".join(where))
        self.query_one("#conflict-view", Static).update(hunk_view(resolution, key, self.show_base))
        self.query_one("#conflict-hunk", VerticalScroll).scroll_home(animate=False)
        self._status()
        self.refresh_bindings()

    def _status(self, text: str | None = None) -> None:
        self.query_one("#conflict-status", Label).update(self._hunks_left() if text is None else text)

    def _hunks_left(self) -> str:
        resolution = self.resolution
        if resolution is None:
            return ""
        left = len(resolution.open_keys())
        if not left:
            return "every hunk chosen"
        base = "hide" if self.show_base else "show"
        return f"{left} of {len(resolution.keys)} hunks open · O/T: whole file · a: {base} merge base · ?: keys"

    def _watch_task(self) -> None:
        """Close when the conflict is gone from under the modal (merged by the agent, requeued, …)."""
        if self.busy or not self.is_attached or self.app.screen is not self:
            return  # at work, already closed, or a question is open over it
        record = self.orch.records.get(self.task_id)
        if record is None or record.status not in IN_CONFLICT:
            self.dismiss(GONE)
        elif self.agent_at_work:
            self._hand_over_to_agent()
        elif self.resolution is None and not self.load_error and not self._loading():
            self.load()

    def _hand_over_to_agent(self) -> None:
        """The resolver agent took the conflict: forget the hunks read, they are its to change now."""
        if self.resolution is not None:
            self.resolution = None
            self._show_agent_at_work()

    def _loading(self) -> bool:
        return any(w.group == "conflict-load" and w.is_running for w in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("agent", "requeue"):
            return None if self.busy or self.agent_at_work else True
        if action not in _ON_A_HUNK:
            return True
        shown = self._on_screen()
        if self.busy or shown is None:
            return None
        return True if _applies(action, parameters, *shown) else None

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if self.agent_at_work:
            return f"the resolver agent is at work on task {self.task_id}"
        if self.busy:
            return "busy with the last choice"
        if action == "undo":
            return "nothing to undo"
        if (shown := self._on_screen()) is None:
            return "the conflict is still being read"
        resolution, current = shown
        if action == "take":
            return resolution.allowed(current, str(parameters[0]))
        if action == "edit":
            return f"{resolution.files[current[0]].path} is binary: take one side of it"
        return None

    # -------------------------------------------------------------- actions

    def action_move(self, step: int) -> None:
        if (shown := self._on_screen()) is None:
            return
        resolution, key = shown
        keys = resolution.keys
        index = keys.index(key) + step
        if not 0 <= index < len(keys):
            self.notify("that was the last hunk" if step > 0 else "this is the first hunk", timeout=2)
            return
        self.current = keys[index]
        self.show()

    def action_toggle_base(self) -> None:
        self.show_base = not self.show_base
        self.show()

    def action_take(self, side: str) -> None:
        if (shown := self._on_screen()) is None:
            return
        resolution, key = shown
        if why := resolution.allowed(key, side):
            self.notify(why, severity="warning")
            return
        resolution.choose([key], side)
        self._advance()

    def action_take_file(self, side: str) -> None:
        if (shown := self._on_screen()) is None:
            return
        resolution, key = shown
        resolution.choose(_in_file(resolution.open_keys(), key[0]) or _in_file(resolution.keys, key[0]), side)
        self._advance()

    def action_undo(self) -> None:
        if self.resolution is None:
            return
        key = self.resolution.undo()
        if key is None:
            self.notify("nothing to undo", timeout=2)
            return
        self.current = key
        self.show()

    def _advance(self) -> None:
        """After a choice: on to the next open hunk, or commit when none is left."""
        resolution, key = self.resolution, self.current
        assert resolution is not None and key is not None
        open_keys = resolution.open_keys()
        if not open_keys:
            self.show()
            self.commit()
            return
        keys = resolution.keys
        here = keys.index(key)
        self.current = next((k for k in open_keys if keys.index(k) > here), open_keys[0])
        self.show()

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        self._status(message if busy else None)
        self.refresh_bindings()

    async def _engine_does(self, doing: str, command: Awaitable[object], timeout: float | None = None) -> bool:
        """Await an engine command with the modal busy; False, the refusal said, when it fails."""
        self._set_busy(True, doing)
        try:
            await command
        except (CommandError, GitError) as exc:
            self._set_busy(False)
            self.notify(str(exc), severity="error", timeout=timeout)
            return False
        self._set_busy(False)
        return True

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def commit(self) -> None:
        resolution = self.resolution
        assert resolution is not None
        merging = self.orch.resolve_conflict(self.task_id, resolution)
        if not await self._engine_does("committing the resolution and merging…", merging, timeout=10):
            return
        self.saved.pop(self.task_id, None)
        if self.record.status in IN_CONFLICT:
            # The base branch moved on and the merge conflicts again: start over with the new hunks.
            self.resolution = None
            self.notify(f"{self.orch.base} moved on; the merge conflicts again", severity="warning")
            self.load()
            return
        self.dismiss(RESOLVED)

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_edit(self) -> None:
        if (shown := self._on_screen()) is None:
            return
        resolution, key = shown
        file = resolution.files[key[0]]
        self._set_busy(True, f"opening {file.path} in your editor…")
        try:
            edited = await self._edit_by_hand(resolution, key)
            if edited is None:
                return
            if has_conflict_markers(edited):
                self.notify(f"{file.path} still has conflict markers; its hunks stay open", severity="warning")
                return
            resolution.set_edited(key[0], edited)
        except (CommandError, GitError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        finally:
            self._set_busy(False)
        self._advance()

    async def _edit_by_hand(self, resolution: Resolution, key: Key) -> str | None:
        """The file with its conflict markers, opened in the editor at the hunk: its text after, or None
        when the editor could not run."""
        file = resolution.files[key[0]]
        target = await self.orch.prepare_manual(self.task_id) / file.path
        text, _starts = resolution.with_markers(key[0])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        line = resolution.line_of(key) if file.textual else 1
        if not self.app.run_editor(target, line=line):  # type: ignore[attr-defined]
            return None
        return target.read_text(encoding="utf-8", errors="replace") if target.exists() else ""

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_agent(self) -> None:
        if await self._engine_does("handing the conflict to the agent…", self.orch.hand_to_agent(self.task_id)):
            self.saved.pop(self.task_id, None)
            self.dismiss(AGENT)

    def action_requeue(self) -> None:
        record = self.record
        question = (f"Drop branch {record.branch} with the agent's work for task {self.task_id} and redo the task "
                    f"from {self.orch.base}?")

        def answered(yes: bool | None) -> None:
            if yes:
                self._requeue()

        self.app.push_screen(ConfirmScreen(question, yes="Drop and requeue"), answered)

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def _requeue(self) -> None:
        if await self._engine_does("dropping the branch and requeueing…", self.orch.requeue(self.task_id)):
            self.saved.pop(self.task_id, None)
            self.dismiss(REQUEUED)

    def action_later(self) -> None:
        self.dismiss(LATER)

    def refresh_from_engine(self) -> None:
        """A new conflict event for this task arrived while the modal is open."""
        if not self.busy:
            self.load()
