"""Task files on disk: load either format, append a task, and write a priority back, keeping the file's
byte-order mark and line endings and refusing any edit that would not load."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from tuiorch.taskfile.markdown import parse_tasks_md, render_task_md, with_priority_md
from tuiorch.taskfile.model import Priority, Task, TaskFileError
from tuiorch.taskfile.toml import parse_tasks_toml, with_priority_toml


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@dataclass(frozen=True)
class _Layout:
    """How a task file is encoded on disk, so a rewrite keeps it: a UTF-8 byte-order mark, line endings."""

    bom: bool = False
    newline: str = "\n"


def _read_task_file(path: Path) -> tuple[str, _Layout]:
    """The file's text with "\n" line ends and no byte-order mark (editors on Windows add both)."""
    try:
        data = path.read_bytes()
        bom = data.startswith(b"\xef\xbb\xbf")
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(path, None, f"cannot read: {_reason(exc)}") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    return text.replace("\r\n", "\n").replace("\r", "\n"), _Layout(bom, newline)


def _write_task_file(path: Path, text: str, layout: _Layout) -> None:
    data = text.replace("\n", layout.newline).encode("utf-8")
    try:
        path.write_bytes((b"\xef\xbb\xbf" if layout.bom else b"") + data)
    except OSError as exc:
        raise TaskFileError(path, None, f"cannot write: {_reason(exc)}") from None


def load_tasks(path: Path, *, validate: bool = True, known_ids: Collection[str] = ()) -> list[Task]:
    """Tasks from `path`: tasks.toml if it ends in .toml, else TASKS.md Markdown (BOM and CRLF accepted)."""
    text, _layout = _read_task_file(path)
    parse, _with_priority = _format_of(path)
    return parse(text, str(path), validate=validate, known_ids=known_ids)


def append_task_md(path: Path, task: Task) -> None:
    """Append `task` to the TASKS.md at `path` (made if missing), refusing if the result would not load.

    The whole resulting file is validated first (e.g. a duplicate id or unknown dependency raises
    TaskFileError) and nothing is written then.
    """
    existing, layout = _read_task_file(path) if path.exists() else ("", _Layout())
    # One blank line between the file's last line and the new heading.
    separator = ""
    if existing.strip() and not existing.endswith("\n\n"):
        separator = "\n" if existing.endswith("\n") else "\n\n"
    addition = separator + render_task_md(task)
    parse_tasks_md(existing + addition, str(path))
    try:
        with path.open("a", encoding="utf-8", newline=layout.newline) as handle:
            handle.write(addition)
    except OSError as exc:
        raise TaskFileError(path, None, f"cannot write: {_reason(exc)}") from None


def write_priority(path: Path, task_id: str, priority: Priority) -> str:
    """Set a task's priority in its task file, keeping the user's formatting; return the new text.

    The result is read back first: if it would not give the same tasks with the new priority, nothing
    is written and TaskFileError says why.
    """
    text, layout = _read_task_file(path)
    parse, with_priority = _format_of(path)
    edited = with_priority(text, task_id, priority, str(path))
    before, after = parse(text, str(path), validate=False), parse(edited, str(path), validate=False)
    if not _only_priority_changed(before, after, task_id, priority):
        raise TaskFileError(
            path, None, f"could not set task {task_id}'s priority without changing other text"
        )
    if edited != text:
        _write_task_file(path, edited, layout)
    return edited


def _only_priority_changed(before: list[Task], after: list[Task], task_id: str, priority: Priority) -> bool:
    """The same tasks with the same text, dependencies and paths; only `task_id`'s priority is new."""
    expected = {t.id: (priority if t.id == task_id else t.priority, t.description, t.depends, t.touches) for t in before}
    return {t.id: (t.priority, t.description, t.depends, t.touches) for t in after} == expected


_Parse = Callable[..., list[Task]]
_WithPriority = Callable[[str, str, Priority, str], str]


def _format_of(path: Path) -> tuple[_Parse, _WithPriority]:
    """The parser and the priority editor of a task file: tasks.toml's for a .toml file, else TASKS.md's."""
    if path.suffix.lower() == ".toml":
        return parse_tasks_toml, with_priority_toml
    return parse_tasks_md, with_priority_md
