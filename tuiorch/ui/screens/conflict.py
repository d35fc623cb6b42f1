"""Conflict triage, hunk by hunk: each conflicting hunk with a few lines of context, the base branch's
side and the task's aligned next to each other (the merge base on a key), and a choice per hunk.

The hunk logic is the engine's (tuiorch.hunks); this screen shows a Resolution and records choices in it.
When every hunk has one, the engine commits the resolution on the task branch and retries the merge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tuiorch.gitops import GitError
from tuiorch.hunks import BOTH, EDITED, OURS, THEIRS, Key, Resolution, context, hunks_of
from tuiorch.model.status import IN_CONFLICT
from tuiorch.orchestrator import CommandError
from tuiorch.ui.format import has_conflict_markers
from tuiorch.ui.highlight import highlight_lines
from tuiorch.ui.screens.confirm import ConfirmScreen
from tuiorch.ui.screens.refusal import SaysWhyNot

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator

#: Result of the modal: what became of the conflict.
RESOLVED, REQUEUED, AGENT, LATER, GONE = "resolved", "requeued", "agent", "later", "gone"
#: Clean lines shown above and below a hunk.
CONTEXT_LINES = 3
#: How often the modal looks whether its task left the conflict (merged by the agent, requeued…).
WATCH_SECONDS = 0.5

SIDE_STYLES = {OURS: "on #1d2b45", THEIRS: "on #1e3a26", "base": "on #3a3420"}


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
    ours_label, theirs_label = resolution.labels
    choice = resolution.choice(key)
    if not file.textual:
        table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False)
        table.add_column(f"{ours_label} (o)", ratio=1, style=SIDE_STYLES[OURS])
        table.add_column(f"{theirs_label} (t)", ratio=1, style=SIDE_STYLES[THEIRS])
        ours = "(deleted)" if file.ours is None else file.ours
        theirs = "(deleted)" if file.theirs is None else file.theirs
        table.add_row(Text(_clip(ours)), Text(_clip(theirs)))
        note = Text(f"{file.kind} conflict: keep one side of the whole file", style="italic")
        return Group(note, table)
    hunk = hunks_of(file.segments)[key[1]]
    before, after = context(file.segments, key[1], CONTEXT_LINES)
    columns: list[tuple[str, str, tuple[str, ...]]] = [(f"{ours_label} (o)", OURS, hunk.ours)]
    if show_base:
        columns.append(("merge base", "base", hunk.base))
    columns.append((f"{theirs_label} (t)", THEIRS, hunk.theirs))
    table = Table(box=box.SIMPLE_HEAD, expand=True, padding=(0, 1), show_edge=False, pad_edge=False)
    for title, side, _lines in columns:
        dim = choice is not None and choice != EDITED and side != "base" and side not in _kept(choice)
        table.add_column(title, ratio=1, no_wrap=True, overflow="ellipsis",
                         header_style="bold" + (" dim" if dim else ""),
                         style=("dim " if dim else "") + SIDE_STYLES[side])
    rendered = [highlight_lines(file.path, list(lines)) for _t, _s, lines in columns]
    rows = max((len(lines) for _t, _s, lines in columns), default=0)
    for row in range(rows):
        table.add_row(*[lines[row] if row < len(lines) else Text("") for lines in rendered])
    # An empty side: the hunk adds lines on one side only, or deletes them on one.
    empty = [Text("(no lines)", style="dim italic") if not lines else Text("") for _t, _s, lines in columns]
    if any(not lines for _t, _s, lines in columns):
        table.add_row(*empty)
    return Group(_context_text(before, file.path), table, _context_text(after, file.path))


def _kept(choice: str) -> tuple[str, ...]:
    return (OURS, THEIRS) if choice == BOTH else (choice,)


def _clip(text: str, lines: int = 200) -> str:
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
        old = self.resolution
        if old is not None and (old.base_tip, old.task_tip) == (fresh.base_tip, fresh.task_tip):
            fresh = old
        elif old is not None and old.history:
            self.notify(f"{self.orch.base} or the task moved since; the conflict is read again", severity="warning")
        self.resolution = self.saved[self.task_id] = fresh
        open_keys = fresh.open_keys()
        self.current = open_keys[0] if open_keys else (fresh.keys[0] if fresh.keys else None)
        self.show()

    def _show_agent_at_work(self) -> None:
        self.query_one("#conflict-where", Label).update("the resolver agent is working on this conflict")
        self.query_one("#conflict-view", Static).update(
            Text("Its output is in the task's pane and log (l). Wait for it, or close this (esc).", style="italic")
        )
        self.refresh_bindings()

    def show(self) -> None:
        """Draw the current hunk, where it is, and how many are left."""
        resolution, key = self.resolution, self.current
        if resolution is None or key is None:
            return
        file = resolution.files[key[0]]
        keys = resolution.keys
        position = keys.index(key) + 1
        in_file = [k for k in keys if k[0] == key[0]]
        where = [file.path, file.kind, f"hunk {position} of {len(keys)}"]
        if len(resolution.files) > 1:
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
        resolution = self.resolution
        if text is None and resolution is not None:
            left = len(resolution.open_keys())
            ours, theirs = resolution.labels
            base = "hide" if self.show_base else "show"
            text = (f"{left} of {len(resolution.keys)} hunks open · O/T: whole file · a: {base} merge base · ?: keys"
                    if left else "every hunk chosen")
        self.query_one("#conflict-status", Label).update(text or "")

    def _watch_task(self) -> None:
        """Close when the conflict is gone from under the modal (merged by the agent, requeued, …)."""
        record = self.orch.records.get(self.task_id)
        if self.busy or not self.is_attached or self.app.screen is not self:
            return  # at work, already closed, or a question is open over it
        if record is None or record.status not in IN_CONFLICT:
            self.dismiss(GONE)
        elif self.agent_at_work and self.resolution is not None:
            self.resolution = None
            self._show_agent_at_work()
        elif not self.agent_at_work and self.resolution is None and not self.load_error and not self._loading():
            self.load()

    def _loading(self) -> bool:
        return any(w.group == "conflict-load" and w.is_running for w in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        ready = not self.busy and self.resolution is not None and self.current is not None
        if action in ("take", "take_file", "move", "edit", "toggle_base"):
            if not ready:
                return None
            if action == "take" and self.resolution is not None and self.current is not None:
                return None if self.resolution.allowed(self.current, str(parameters[0])) else True
            if action == "edit":
                assert self.resolution is not None and self.current is not None
                return None if self.resolution.files[self.current[0]].binary else True
            return True
        if action == "undo":
            return True if ready and self.resolution is not None and self.resolution.history else None
        if action in ("agent", "requeue"):
            return None if self.busy or self.agent_at_work else True
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if self.agent_at_work:
            return f"the resolver agent is at work on task {self.task_id}"
        if self.busy:
            return "busy with the last choice"
        resolution, current = self.resolution, self.current
        if resolution is None or current is None:
            return "the conflict is still being read" if action != "undo" else "nothing to undo"
        if action == "take":
            return resolution.allowed(current, str(parameters[0]))
        if action == "edit":
            return f"{resolution.files[current[0]].path} is binary: take one side of it"
        if action == "undo":
            return "nothing to undo"
        return None

    # -------------------------------------------------------------- actions

    def action_move(self, step: int) -> None:
        resolution, key = self.resolution, self.current
        if resolution is None or key is None:
            return
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
        resolution, key = self.resolution, self.current
        if resolution is None or key is None:
            return
        if why := resolution.allowed(key, side):
            self.notify(why, severity="warning")
            return
        resolution.choose([key], side)
        self._advance()

    def action_take_file(self, side: str) -> None:
        resolution, key = self.resolution, self.current
        if resolution is None or key is None:
            return
        keys = [k for k in resolution.open_keys() if k[0] == key[0]] or [k for k in resolution.keys if k[0] == key[0]]
        resolution.choose(keys, side)
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
        after = [k for k in open_keys if keys.index(k) > keys.index(key)]
        self.current = after[0] if after else open_keys[0]
        self.show()

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        self._status(message if busy else None)
        self.refresh_bindings()

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def commit(self) -> None:
        resolution = self.resolution
        assert resolution is not None
        self._set_busy(True, "committing the resolution and merging…")
        try:
            await self.orch.resolve_conflict(self.task_id, resolution)
        except (CommandError, GitError) as exc:
            self._set_busy(False)
            self.notify(str(exc), severity="error", timeout=10)
            return
        self._set_busy(False)
        if self.record.status in IN_CONFLICT:
            # The base branch moved on and the merge conflicts again: start over with the new hunks.
            self.saved.pop(self.task_id, None)
            self.resolution = None
            self.notify(f"{self.orch.base} moved on; the merge conflicts again", severity="warning")
            self.load()
            return
        self.saved.pop(self.task_id, None)
        self.dismiss(RESOLVED)

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_edit(self) -> None:
        resolution, key = self.resolution, self.current
        if resolution is None or key is None:
            return
        file = resolution.files[key[0]]
        self._set_busy(True, f"opening {file.path} in your editor…")
        try:
            worktree = await self.orch.prepare_manual(self.task_id)
            target = worktree / file.path
            text, _starts = resolution.with_markers(key[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            line = resolution.line_of(key) if file.textual else 1
            if not self.app.run_editor(target, line=line):  # type: ignore[attr-defined]
                return
            edited = target.read_text(encoding="utf-8", errors="replace") if target.exists() else ""
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

    @work(exclusive=True, group="conflict", exit_on_error=False)
    async def action_agent(self) -> None:
        self._set_busy(True, "handing the conflict to the agent…")
        try:
            await self.orch.hand_to_agent(self.task_id)
        except (CommandError, GitError) as exc:
            self._set_busy(False)
            self.notify(str(exc), severity="error")
            return
        self.saved.pop(self.task_id, None)
        self._set_busy(False)
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
        self._set_busy(True, "dropping the branch and requeueing…")
        try:
            await self.orch.requeue(self.task_id)
        except (CommandError, GitError) as exc:
            self._set_busy(False)
            self.notify(str(exc), severity="error")
            return
        self.saved.pop(self.task_id, None)
        self._set_busy(False)
        self.dismiss(REQUEUED)

    def action_later(self) -> None:
        self.dismiss(LATER)

    def refresh_from_engine(self) -> None:
        """A new conflict event for this task arrived while the modal is open."""
        if not self.busy:
            self.load()
