"""The task model: a task, its priority, the rules its id and fields follow, and the checks across a
task list (duplicates, unknown dependencies, cycles). No file format lives here."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class Priority(IntEnum):
    """Lower value starts first."""

    FOUNDATION = 0
    FEATURE = 1
    POLISH = 2

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls[text.strip().upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    description: str = ""
    depends: tuple[str, ...] = ()
    priority: Priority = Priority.FEATURE
    touches: tuple[str, ...] = ()
    type: str = "feat"
    #: Where the task was read from, for error messages ("TASKS.md", 12).
    source: str = ""
    line: int = 0


class TaskFileError(Exception):
    """Bad task input. str() is the user-facing message: "TASKS.md:12: duplicate task id '3'"."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


#: Task ids become branch and folder names.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_ID_LENGTH = 100
#: Conventional-commit type, optionally with a scope and a breaking-change mark: "feat", "fix(ui)!".
_COMMIT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\([^()\s]+\))?!?")
_ID_RULE = "ids are letters, digits, '.', '_' and '-', starting with a letter or digit"
_PRIORITIES = ", ".join(p.label for p in Priority)


def id_problem(task_id: str) -> str | None:
    """Why `task_id` can't be a task id (it becomes `task-<id>` branch and folder names), or None."""
    if not _SAFE_ID.fullmatch(task_id):
        return f"unsafe task id {task_id!r} ({_ID_RULE})"
    # The regex alone still lets through names git refuses as branch names.
    if ".." in task_id or task_id.endswith((".", ".lock")):
        return f"unsafe task id {task_id!r} (git branch names can't contain '..' or end in '.' or '.lock')"
    if len(task_id) > _MAX_ID_LENGTH:
        return f"unsafe task id {task_id[:20]!r}... (longer than {_MAX_ID_LENGTH} characters)"
    return None


def _has_control_chars(text: str) -> bool:
    return any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in text)


def _touch_problem(path: str) -> str | None:
    # A touches path is written back as "touches: a, b  # comment"-style Markdown, so it can't hold
    # what that line uses as syntax.
    if not path or path != path.strip():
        return f"touches path {path!r} is empty or has surrounding spaces"
    if "," in path or _has_control_chars(path) or re.search(r"\s#", path):
        return f"touches path {path!r} can't contain a comma, a ' #' or control characters"
    return None


def validate_tasks(tasks: list[Task], path: str, known_ids: Collection[str] = ()) -> None:
    """Raise TaskFileError for the first problem found, naming the task's line.

    `known_ids` are ids that count as existing although not in `tasks` (e.g. tasks already merged and
    since deleted from the file), so depending on them is fine.
    """
    first_line: dict[str, int] = {}
    for task in tasks:
        problem = _task_problem(task) or _duplicate_problem(task, first_line)
        if problem:
            raise _error(task, path, problem)
        first_line[task.id] = task.line
    _check_depends(tasks, path, set(first_line) | set(known_ids))
    cycle = find_cycle(tasks)
    if cycle:
        head = next(t for t in tasks if t.id == cycle[0])
        raise _error(head, path, "dependency cycle: " + " -> ".join(cycle))


def _error(task: Task, path: str, message: str) -> TaskFileError:
    """An error at the task's own file and line (a task read from another file keeps its source)."""
    return TaskFileError(task.source or path, task.line or None, message)


def _task_problem(task: Task) -> str | None:
    """What is wrong with one task on its own (id, title, type, touches), or None."""
    return id_problem(task.id) or _title_problem(task) or _type_problem(task) or _touches_problem(task)


def _title_problem(task: Task) -> str | None:
    if not task.title.strip():
        return f"task {task.id}: empty title"
    if "\n" in task.title or _has_control_chars(task.title):
        return f"task {task.id}: the title must be one line"
    return None


def _type_problem(task: Task) -> str | None:
    if _COMMIT_TYPE.fullmatch(task.type):
        return None
    return (
        f"task {task.id}: bad type {task.type!r} "
        "(expected a conventional-commit type such as feat, fix, docs, refactor, test, chore)"
    )


def _touches_problem(task: Task) -> str | None:
    problem = next((p for t in task.touches if (p := _touch_problem(t))), None)
    return problem and f"task {task.id}: {problem}"


def _duplicate_problem(task: Task, first_line: dict[str, int]) -> str | None:
    if task.id not in first_line:
        return None
    where = first_line[task.id]
    return f"duplicate task id {task.id!r}" + (f" (first at line {where})" if where else "")


def _check_depends(tasks: list[Task], path: str, existing: set[str]) -> None:
    """Every dependency names another task that exists."""
    for task in tasks:
        for dep in task.depends:
            if dep == task.id:
                raise _error(task, path, f"task {task.id} depends on itself")
            if dep not in existing:
                raise _error(task, path, f"task {task.id} depends on unknown task {dep!r}")


def find_cycle(tasks: Iterable[Task]) -> list[str] | None:
    """A dependency cycle as ids ["1", "3", "1"] (each depends on the next), or None.

    Iterative depth-first search so a 10,000-long dependency chain can't hit the recursion limit.
    Dependencies on ids not in `tasks` are ignored (validate_tasks reports those).
    """
    depends = {t.id: t.depends for t in tasks}
    unvisited, on_path, done = 0, 1, 2
    state = dict.fromkeys(depends, unvisited)
    for root in depends:
        if state[root] != unvisited:
            continue
        state[root] = on_path
        path = [root]
        # One iterator per task on the path: the dependencies still to look at.
        pending = [iter(depends[root])]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                state[path.pop()] = done
                pending.pop()
                continue
            dep_state = state.get(dep, done)
            if dep_state == on_path:
                return [*path[path.index(dep) :], dep]
            if dep_state == unvisited:
                state[dep] = on_path
                path.append(dep)
                pending.append(iter(depends[dep]))
    return None


def nearest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key `key` most likely misspells ("priorty" -> "priority"), or None if none is close."""
    close = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def strip_blank_edges(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def parse_priority(value: str, path: str, line: int) -> Priority:
    if not value:
        return Priority.FEATURE
    try:
        return Priority.parse(value)
    except KeyError:
        raise TaskFileError(path, line, f"unknown priority {value!r} (expected {_PRIORITIES})") from None


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
