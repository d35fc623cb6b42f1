"""Conflict triage: the conflicting paths with their kind, ours and theirs side by side, and the ways out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from tuiorch.events import TaskStatus
from tuiorch.ui.format import has_conflict_markers

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator

#: Result of the modal: what became of the conflict.
RESOLVED, REQUEUED, AGENT, LATER = "resolved", "requeued", "agent", "later"


class ConflictScreen(ModalScreen[str]):
    BINDINGS = [
        Binding("o", "take('ours')", "Take ours", id="take_ours", tooltip="Keep main's version of this file"),
        Binding("t", "take('theirs')", "Take theirs", id="take_theirs", tooltip="Keep the task's version"),
        Binding("e", "edit", "Edit", id="edit", tooltip="Open the file with conflict markers in $EDITOR"),
        Binding("g", "agent", "Agent", id="hand_to_agent", tooltip="Let the agent resolve every path"),
        Binding("R", "requeue", "Abort+requeue", id="requeue",
                tooltip="Drop the branch and redo the task from the new main"),
        Binding("escape", "later", "Later", id="later", tooltip="Close; the conflict stays listed"),
    ]

    def __init__(self, orch: Orchestrator, task_id: str, resolved: dict[str, str]) -> None:
        """`resolved` (path -> how) is the app's memory for this task, so reopening keeps what was done."""
        super().__init__()
        self.orch = orch
        self.task_id = task_id
        self.resolved = resolved
        self.paths: list[str] = []
        self.busy = False

    # -------------------------------------------------------------- state

    @property
    def record(self) -> Any:
        return self.orch.records[self.task_id]

    def unresolved(self) -> list[str]:
        return [p for p in self.paths if p not in self.resolved]

    @property
    def current_path(self) -> str | None:
        index = self.query_one(OptionList).highlighted
        return self.paths[index] if index is not None and 0 <= index < len(self.paths) else None

    def _sync_paths(self) -> None:
        """The record's open paths plus the ones resolved here (the engine drops those from the record)."""
        open_paths = [p for p in self.record.paths if p not in self.paths]
        self.paths.extend(open_paths)
        for path in list(self.resolved):
            if path not in self.paths:
                self.paths.append(path)

    # -------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        task = self.record.task
        with Vertical(id="conflict-dialog", classes="dialog"):
            yield Label(f"conflict · task {task.id} {task.title}", id="conflict-title", markup=False)
            with Horizontal(id="conflict-body"):
                yield OptionList(id="conflict-paths")
                with Horizontal(id="conflict-sides"):
                    with Vertical(classes="side"):
                        yield Label("ours (main)", classes="side-title")
                        with VerticalScroll():
                            yield Static("", id="ours", markup=False)
                    with Vertical(classes="side"):
                        yield Label(f"theirs (task {task.id})", classes="side-title")
                        with VerticalScroll():
                            yield Static("", id="theirs", markup=False)
            yield Label("", id="conflict-status", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if not self.query(OptionList):
            return  # pushed while the app was closing: nothing was composed, nothing to show
        self._sync_paths()
        self._render_paths()
        options = self.query_one(OptionList)
        options.focus()
        first = self.unresolved()
        if first:
            options.highlighted = self.paths.index(first[0])
        elif self.paths:
            options.highlighted = 0

    def _render_paths(self) -> None:
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        kinds = self.record.kinds
        options.clear_options()
        for path in self.paths:
            how = self.resolved.get(path)
            mark = f"✓ {how:<7}" if how else f"✗ {kinds.get(path, 'content'):<7}"
            options.add_option(Option(f"{mark} {path}", id=path))
        if highlighted is not None and self.paths:
            options.highlighted = min(highlighted, len(self.paths) - 1)
        left = len(self.unresolved())
        self.query_one("#conflict-status", Label).update(
            f"{left} of {len(self.paths)} paths unresolved" if left else "every path resolved"
        )

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        # o/t/e apply to the highlighted path: grey them out or light them up now, not on some later refresh.
        self.refresh_bindings()
        path = event.option.id
        if path is None:
            return
        try:
            ours, theirs, _base = self.orch.conflict_sides(self.task_id, path)
        except Exception as exc:  # a side may be unreadable mid-resolution; say so instead of crashing
            ours = theirs = f"(could not read: {exc})"
        self.query_one("#ours", Static).update("(deleted on main)" if ours is None else ours)
        self.query_one("#theirs", Static).update("(deleted by the task)" if theirs is None else theirs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("take", "edit"):
            return None if self.busy or self.current_path is None or self.current_path in self.resolved else True
        if action in ("agent", "requeue"):
            return None if self.busy else True
        return True

    # -------------------------------------------------------------- actions

    def _mark(self, path: str, how: str) -> None:
        self.resolved[path] = how
        self._render_paths()
        rest = self.unresolved()
        if rest:
            self.query_one(OptionList).highlighted = self.paths.index(rest[0])
        self.refresh_bindings()

    def _set_busy(self, busy: bool, note: str = "") -> None:
        self.busy = busy
        if note:
            self.query_one("#conflict-status", Label).update(note)
        self.refresh_bindings()

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_take(self, side: str) -> None:
        path = self.current_path
        if path is None or path in self.resolved:
            return
        self._set_busy(True, f"taking {side} for {path}…")
        try:
            await self.orch.take_side(self.task_id, path, side)
            self._mark(path, side)
        finally:
            self._set_busy(False)
        await self._finish_if_done()

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_edit(self) -> None:
        path = self.current_path
        if path is None or path in self.resolved:
            return
        self._set_busy(True, f"preparing {path} for editing…")
        try:
            worktree = await self.orch.prepare_manual(self.task_id)
            target = worktree / path
            ok = self.app.run_editor(target)  # type: ignore[attr-defined]
            if not ok:
                return
            if target.exists() and has_conflict_markers(target.read_text(encoding="utf-8", errors="replace")):
                self.notify(f"{path} still has conflict markers", severity="warning")
                return
            await self.orch.mark_resolved(self.task_id, path)  # stage the hand edit so the merge can finish
            self._mark(path, "edited")
        finally:
            self._set_busy(False)
        await self._finish_if_done()

    async def _finish_if_done(self) -> None:
        if self.unresolved() or not self.paths:
            return
        self._set_busy(True, "committing the resolution and merging…")
        try:
            await self.orch.finish_resolution(self.task_id)
        finally:
            self._set_busy(False)
        if self.record.status is TaskStatus.CONFLICT:
            # main moved on and conflicts again: start over with the new paths.
            self.resolved.clear()
            self.paths = []
            self._sync_paths()
            self._render_paths()
            self.notify("main moved on; the merge conflicts again", severity="warning")
            return
        self.dismiss(RESOLVED)

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_agent(self) -> None:
        self._set_busy(True, "handing the conflict to the agent…")
        try:
            self.app.run_command(self.orch.hand_to_agent(self.task_id))  # type: ignore[attr-defined]
        finally:
            self._set_busy(False)
        self.dismiss(AGENT)

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_requeue(self) -> None:
        self._set_busy(True, "dropping the branch and requeueing…")
        try:
            await self.orch.requeue(self.task_id)
        finally:
            self._set_busy(False)
        self.resolved.clear()
        self.dismiss(REQUEUED)

    def action_later(self) -> None:
        self.dismiss(LATER)

    def refresh_from_engine(self) -> None:
        """A new conflict event for this task arrived while the modal is open."""
        self._sync_paths()
        self._render_paths()
