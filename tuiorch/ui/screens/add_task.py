"""Add a task from the TUI (`a`): a small form, checked like the task file, appended to it and queued."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from pathlib import Path

import tomli_w
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from tuiorch.tasks import (
    Priority,
    Task,
    TaskFileError,
    append_task_md,
    id_problem,
    parse_tasks_toml,
    validate_tasks,
)

#: The form's text fields in the order enter walks them.
TEXT_FIELDS = ("id", "title", "depends", "touches", "description")
#: Where a task made in the form says it came from, in error messages.
FORM_SOURCE = "new task"


def _split(text: str, pattern: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in re.split(pattern, text):
        if item.strip():
            seen.setdefault(item.strip(), None)
    return tuple(seen)


def build_task(
    task_id: str,
    title: str,
    priority: str,
    depends: str,
    touches: str,
    description: str,
    known_ids: Collection[str],
) -> Task:
    """The Task the form describes; ValueError with a user-facing message when it can't be one.

    Checked with the same rules as the task file (tasks.validate_tasks), plus: the id is new and every
    dependency is a task the run knows.
    """
    task_id = task_id.strip()
    if not task_id:
        raise ValueError("the task needs an id")
    if problem := id_problem(task_id):
        raise ValueError(problem)
    if task_id in known_ids:
        raise ValueError(f"a task {task_id} exists already")
    if not title.strip():
        raise ValueError("the task needs a title")
    try:
        level = Priority.parse(priority)
    except KeyError:
        raise ValueError(f"unknown priority {priority!r} (foundation, feature or polish)") from None
    task = Task(
        id=task_id,
        title=title.strip(),
        description=description.strip("\n"),
        depends=_split(depends, r"[,\s]+"),
        priority=level,
        touches=_split(touches, r","),
        source=FORM_SOURCE,
    )
    try:
        validate_tasks([task], FORM_SOURCE, known_ids=known_ids)
    except TaskFileError as exc:
        raise ValueError(exc.message) from None
    return task


def append_task_toml(path: Path, task: Task) -> None:
    """tasks.toml's counterpart of tasks.append_task_md: one `[[task]]` table, refused if the file would not load."""
    try:
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(path, None, f"cannot read: {exc}") from None
    table: dict[str, object] = {"id": task.id, "title": task.title, "priority": task.priority.label}
    optional = {"depends": list(task.depends), "touches": list(task.touches), "description": task.description}
    table.update((key, value) for key, value in optional.items() if value)
    # One blank line between tables (the file's last line may lack its newline); none at the top.
    gap = ("\n" if existing.endswith("\n") else "\n\n") if existing.strip() else ""
    # tomli_w writes a list of tables inline; the file's own style is one [[task]] header per task.
    addition = gap + "[[task]]\n" + tomli_w.dumps(table)
    parse_tasks_toml(existing + addition, str(path))
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(addition)
    except OSError as exc:
        raise TaskFileError(path, None, f"cannot write: {exc}") from None


def append_task(path: Path, task: Task) -> None:
    """Append `task` to the task file in its own format; TaskFileError and nothing written if it would break it."""
    if path.suffix.lower() == ".toml":
        append_task_toml(path, task)
    else:
        append_task_md(path, task)


class AddTaskScreen(ModalScreen[Task | None]):
    """Dismissed with the added Task, or None. `save` adds it (file and queue) and returns an error or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="add_cancel"),
        Binding("ctrl+s", "submit", "Add", id="add_submit", tooltip="Add the task to the file and the queue"),
    ]

    def __init__(self, known_ids: Collection[str], save: Callable[[Task], str | None], where: str) -> None:
        super().__init__()
        self.known_ids = set(known_ids)
        self.save = save
        self.where = where

    def compose(self) -> ComposeResult:
        # Compact fields, one line each, so the whole form and its buttons fit an 80x24 terminal.
        with Vertical(id="add-dialog", classes="dialog"):
            yield Label(f"add a task · appended to {self.where}", id="add-title-label", markup=False)
            with Horizontal(classes="row"):
                yield Label("id", classes="field-label")
                yield Input(placeholder="e.g. 12", id="add-id", compact=True)
                yield Label("priority", classes="field-label short")
                yield Select([(p.label, p.label) for p in Priority], value=Priority.FEATURE.label,
                             allow_blank=False, id="add-priority", compact=True)
            with Horizontal(classes="row"):
                yield Label("title", classes="field-label")
                yield Input(placeholder="what the task does, in one line", id="add-title", compact=True)
            with Horizontal(classes="row"):
                yield Label("depends", classes="field-label")
                yield Input(placeholder="task ids, comma separated", id="add-depends", compact=True)
            with Horizontal(classes="row"):
                yield Label("touches", classes="field-label")
                yield Input(placeholder="paths, comma separated", id="add-touches", compact=True)
            yield Label("description, handed to the agent (enter: new line)", classes="hint")
            yield TextArea(id="add-description", soft_wrap=True, show_line_numbers=False, compact=True)
            yield Label("", id="add-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Label("enter: next field · ctrl+s: add", classes="hint keys")
                yield Button("Add (ctrl+s)", variant="primary", id="add", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#add-id", Input).focus()

    def field(self, name: str) -> str:
        return self.query_one(f"#add-{name}", Input).value

    def show_error(self, message: str) -> None:
        self.query_one("#add-error", Label).update(message)

    def action_submit(self) -> None:
        priority = self.query_one("#add-priority", Select).value
        try:
            task = build_task(
                self.field("id"),
                self.field("title"),
                str(priority),
                self.field("depends"),
                self.field("touches"),
                self.query_one("#add-description", TextArea).text,
                self.known_ids,
            )
        except ValueError as exc:
            self.show_error(str(exc))
            return
        if error := self.save(task):
            self.show_error(error)
            return
        self.dismiss(task)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in a one-line field moves to the next text field (tab reaches the priority too): a
        # half-filled task must never reach an agent by accident.
        event.stop()
        order = [f"add-{name}" for name in TEXT_FIELDS]
        if event.input.id in order:
            following = order[order.index(event.input.id) + 1]
            self.query_one(f"#{following}").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_submit()
        else:
            self.action_cancel()
