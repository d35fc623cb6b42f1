"""tasks.toml: read its [[task]] tables into tasks, and set one task's priority in place."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection

from tuiorch.taskfile.model import (
    Priority,
    Task,
    TaskFileError,
    dedupe,
    id_problem,
    nearest_key,
    parse_priority,
    strip_blank_edges,
    validate_tasks,
)

_TOML_KEYS = ("id", "title", "description", "depends", "priority", "touches", "type")
_TOML_TABLE_HEADER = re.compile(r"""\s*\[\[\s*(task|"task"|'task')\s*\]\]""")
_PRIORITY_LINE_TOML = re.compile(r"(?P<head>\s*priority\s*=\s*)(?P<value>\"[^\"]*\"|'[^']*')(?P<tail>.*)$")


def _task_header_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if _TOML_TABLE_HEADER.match(line)]


def parse_tasks_toml(
    text: str, path: str = "tasks.toml", *, validate: bool = True, known_ids: Collection[str] = ()
) -> list[Task]:
    """Tasks from tasks.toml (`[[task]]` tables), in file order; errors name the table's line."""
    tables = _task_tables(text, path)
    header_lines = _task_header_lines(text)
    if len(header_lines) != len(tables):
        header_lines = [0] * len(tables)  # unusual spelling (e.g. inline tables): no line numbers
    text_lines = text.splitlines()
    tasks = [
        _task_from_table(table, path, line, _key_lines(text_lines, line) if line else None)
        for table, line in zip(tables, header_lines, strict=True)
    ]
    if validate:
        validate_tasks(tasks, path, known_ids)
    return tasks


def _task_tables(text: str, path: str) -> list[dict[str, object]]:
    """The document's [[task]] tables; anything else at the top level is refused."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(path, None, f"invalid TOML: {exc}") from None
    unknown = [key for key in document if key != "task"]
    if unknown:
        raise TaskFileError(path, None, f"unknown key {unknown[0]!r} (expected [[task]] tables)")
    tables = document.get("task", [])
    if not _list_where(tables, lambda table: isinstance(table, dict)):
        raise TaskFileError(path, None, "'task' must be [[task]] tables")
    return tables


def _key_lines(lines: list[str], header: int) -> dict[str, int]:
    """Line number of each bare `key =` in the [[task]] table whose header is at line `header` (1-based)."""
    found: dict[str, int] = {}
    for number in range(header + 1, len(lines) + 1):
        text = lines[number - 1]
        if text.lstrip().startswith("["):
            break
        if (match := re.match(r"\s*([A-Za-z0-9_-]+)\s*=", text)) is not None:
            found.setdefault(match[1], number)
    return found


def _task_from_table(
    table: dict[str, object], path: str, line: int, key_lines: dict[str, int] | None = None
) -> Task:
    reader = _TableReader(table, path, line)
    reader.check_keys(key_lines)
    task_id = reader.task_id()
    touches = reader.touches(task_id)
    return Task(
        id=task_id,
        title=reader.text(task_id, "title", "").strip(),
        description=strip_blank_edges(reader.text(task_id, "description", "").split("\n")),
        depends=reader.id_list(task_id, "depends"),
        priority=parse_priority(reader.text(task_id, "priority", "").strip(), path, line or 0),
        touches=touches,
        type=reader.text(task_id, "type", "feat").strip() or "feat",
        source=path,
        line=line,
    )


class _TableReader:
    """Reads one [[task]] table, each mistake a TaskFileError at the table's line (or the key's)."""

    def __init__(self, table: dict[str, object], path: str, line: int) -> None:
        self.table, self.path, self.line = table, path, line

    def fail(self, message: str) -> TaskFileError:
        return TaskFileError(self.path, self.line or None, message)

    def check_keys(self, key_lines: dict[str, int] | None) -> None:
        for key in self.table:
            if key not in _TOML_KEYS:
                near = nearest_key(key, _TOML_KEYS)
                hint = f"; did you mean `{near}`?" if near else ""
                where = key_lines.get(key, self.line) if key_lines else self.line
                raise TaskFileError(
                    self.path,
                    where or None,
                    f"unknown key {key!r} in [[task]]{hint} (keys: {', '.join(_TOML_KEYS)})",
                )

    def task_id(self) -> str:
        raw_id = self.table.get("id")
        if raw_id is None:
            raise self.fail("[[task]] without an id")
        if not _is_id_value(raw_id):
            raise self.fail(f"id must be a string or an integer, got {raw_id!r}")
        task_id = str(raw_id).strip()
        if problem := id_problem(task_id):
            raise self.fail(problem)
        return task_id

    def text(self, task_id: str, key: str, default: str) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            raise self.fail(f"task {task_id}: {key} must be a string, got {value!r}")
        return value

    def id_list(self, task_id: str, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not _list_where(value, _is_id_value):
            raise self.fail(f"task {task_id}: {key} must be a list of task ids, got {value!r}")
        return dedupe(str(v).strip() for v in value)

    def touches(self, task_id: str) -> tuple[str, ...]:
        touches = self.table.get("touches", [])
        if not _list_where(touches, lambda path: isinstance(path, str)):
            raise self.fail(f"task {task_id}: touches must be a list of paths, got {touches!r}")
        return tuple(t.strip() for t in touches if t.strip())


def _is_id_value(value: object) -> bool:
    """A string or an integer; TOML's true and false are neither (though Python's bool is an int)."""
    return isinstance(value, str | int) and not isinstance(value, bool)


def _list_where(value: object, test: Callable[[object], bool]) -> bool:
    """Whether `value` is a list whose every item passes `test`."""
    return isinstance(value, list) and all(test(item) for item in value)


def with_priority_toml(text: str, task_id: str, priority: Priority, path: str = "tasks.toml") -> str:
    """tasks.toml's counterpart of with_priority_md: one line changed or added in the task's table."""
    tables = parse_tasks_toml(text, path, validate=False)
    headers = _task_header_lines(text)
    position = next((i for i, task in enumerate(tables) if task.id == task_id), None)
    if position is None or len(headers) != len(tables):
        raise TaskFileError(path, None, f"no [[task]] table with id {task_id} to set its priority")
    lines = text.split("\n")
    _set_priority_line(lines, headers[position], priority.label)
    return "\n".join(lines)


def _set_priority_line(lines: list[str], header: int, label: str) -> None:
    """Change the priority line of the table whose header is at line `header` (1-based), or add one under
    its title (else its id, else the header)."""
    key_lines = _key_lines(lines, header)
    at = key_lines.get("priority")
    found = _PRIORITY_LINE_TOML.fullmatch(lines[at - 1]) if at else None
    if found:
        lines[at - 1] = f'{found["head"]}"{label}"{found["tail"]}'  # type: ignore[operator]
        return
    lines.insert(key_lines.get("title", key_lines.get("id", header)), f'priority = "{label}"')
