"""Task model; parse and validate TASKS.md / tasks.toml."""

from __future__ import annotations

import difflib
import re
import tomllib
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


# --- ids, types, paths -------------------------------------------------------------------------------

#: Task ids become branch and folder names (DESIGN §2).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_ID_LENGTH = 100
#: Conventional-commit type, optionally with a scope and a breaking-change mark: "feat", "fix(ui)!".
_COMMIT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\([^()\s]+\))?!?")
_ID_RULE = "ids are letters, digits, '.', '_' and '-', starting with a letter or digit"


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


# --- validation ----------------------------------------------------------------------------------------


def validate_tasks(tasks: list[Task], path: str, known_ids: Collection[str] = ()) -> None:
    """Raise TaskFileError for the first problem found, naming the task's line.

    `known_ids` are ids that count as existing although not in `tasks` (e.g. tasks already merged and
    since deleted from the file), so depending on them is fine.
    """
    first_line: dict[str, int] = {}
    for task in tasks:
        problem = id_problem(task.id)
        if problem is None and not task.title.strip():
            problem = f"task {task.id}: empty title"
        if problem is None and ("\n" in task.title or _has_control_chars(task.title)):
            problem = f"task {task.id}: the title must be one line"
        if problem is None and not _COMMIT_TYPE.fullmatch(task.type):
            problem = (
                f"task {task.id}: bad type {task.type!r} "
                "(expected a conventional-commit type such as feat, fix, docs, refactor, test, chore)"
            )
        if problem is None:
            problem = next((p for t in task.touches if (p := _touch_problem(t))), None)
            problem = problem and f"task {task.id}: {problem}"
        if problem is None and task.id in first_line:
            where = first_line[task.id]
            problem = f"duplicate task id {task.id!r}" + (f" (first at line {where})" if where else "")
        if problem:
            raise TaskFileError(task.source or path, task.line or None, problem)
        first_line[task.id] = task.line

    existing = set(first_line) | set(known_ids)
    for task in tasks:
        for dep in task.depends:
            if dep == task.id:
                raise TaskFileError(
                    task.source or path, task.line or None, f"task {task.id} depends on itself"
                )
            if dep not in existing:
                raise TaskFileError(
                    task.source or path, task.line or None, f"task {task.id} depends on unknown task {dep!r}"
                )

    cycle = find_cycle(tasks)
    if cycle:
        head = next(t for t in tasks if t.id == cycle[0])
        raise TaskFileError(head.source or path, head.line or None, "dependency cycle: " + " -> ".join(cycle))


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


# --- Markdown ------------------------------------------------------------------------------------------

#: A line that claims to be a task heading; `_TASK_HEADING` is the well-formed version.
_TASK_HEADING_START = re.compile(r" {0,3}##[ \t]+task(?:\b|(?=\d))", re.IGNORECASE)  # `## Task2:` too
_TASK_HEADING = re.compile(r" {0,3}##[ \t]+task[ \t]+(?P<id>[^:]*?)[ \t]*:(?P<title>.*)$", re.IGNORECASE)
_FENCE = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_METADATA_KEYS = ("depends", "priority", "touches", "type")
_METADATA = re.compile(r"(?P<key>depends|priority|touches|type)[ \t]*:(?P<value>.*)$", re.IGNORECASE)
#: A `key: value` line: where metadata belongs, one whose key is close to a known one is a typo.
_KEY_LIKE = re.compile(r"(?P<key>[A-Za-z][A-Za-z_-]*)[ \t]*:(?:[ \t]|$)")
#: A heading of another level that reads like a task: `# Task 3`, `### Task 3: Title`, `#### task a1: x`.
_OTHER_LEVEL_TASK = re.compile(
    r" {0,3}(?P<hashes>#{1,6})[ \t]+task(?:[ \t]+(?:\d[\w.-]*[ \t]*(?::.*)?|[\w.-]+[ \t]*:.*)|\d[\w.-]*[ \t]*(?::.*)?)$",
    re.IGNORECASE,
)
#: "# comment" after a value: a '#' at the start or after a space, followed by a space or the end.
_COMMENT = re.compile(r"(?:^|\s)#(?:\s|$).*$")
_PRIORITIES = ", ".join(p.label for p in Priority)


class _FenceTracker:
    """Follows CommonMark fenced code blocks line by line, so headings inside them stay body text."""

    def __init__(self) -> None:
        self.fence: str | None = None  # the opening fence while inside a block
        self.opened_at = 0

    def feed(self, line: str, number: int) -> bool:
        """Take the next line; True if it is inside (or opens or closes) a fenced block."""
        match = _FENCE.match(line)
        if self.fence is None:
            # A backtick fence's info string can't contain backticks (CommonMark).
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                self.fence, self.opened_at = match["fence"], number
                return True
            return False
        closes = (
            match is not None
            and match["fence"][0] == self.fence[0]
            and len(match["fence"]) >= len(self.fence)
            and not match["info"].strip()
        )
        if closes:
            self.fence = None
        return True


def _is_task_heading_line(line: str) -> bool:
    return _TASK_HEADING_START.match(line) is not None


def _looks_like_task_heading(line: str) -> bool:
    """A task heading, or a heading of another level that would be mistaken for one."""
    return _is_task_heading_line(line) or _OTHER_LEVEL_TASK.match(line) is not None


def nearest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key `key` most likely misspells ("priorty" -> "priority"), or None if none is close."""
    close = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _strip_blank_edges(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def _parse_priority(value: str, path: str, line: int) -> Priority:
    if not value:
        return Priority.FEATURE
    try:
        return Priority.parse(value)
    except KeyError:
        raise TaskFileError(path, line, f"unknown priority {value!r} (expected {_PRIORITIES})") from None


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _parse_depends(value: str) -> tuple[str, ...]:
    if value.lower() == "none":
        return ()
    return _dedupe(d for d in re.split(r"[,\s]+", value) if d)


def parse_tasks_md(
    text: str, path: str = "TASKS.md", *, validate: bool = True, known_ids: Collection[str] = ()
) -> list[Task]:
    """Tasks from TASKS.md text, in file order; TaskFileError names the line of the first problem.

    A task is a `## Task <id>: <title>` heading, then metadata lines (`depends:`, `priority:`,
    `touches:`, `type:`; blank lines before them are skipped; the block ends at the first line that is
    not a known `key: value`), then the body, which runs to the next task heading. Text before the first
    heading is ignored. Headings inside fenced code blocks are body text; a body line `\\## Task ...`
    is the escaped (literal) text `## Task ...`.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # (heading line number, id, title, index of the first line after the heading)
    headings: list[tuple[int, str, str, int]] = []
    misleveled: TaskFileError | None = None
    fences = _FenceTracker()
    for index, line in enumerate(lines):
        number = index + 1
        if fences.feed(line, number):
            continue
        if not _is_task_heading_line(line):
            if (other := _OTHER_LEVEL_TASK.match(line)) is not None and misleveled is None:
                # Read as text, it would silently become part of the task above it. Reported once the
                # blocks are read, so that the first mistake in the file is the one named.
                misleveled = TaskFileError(
                    path,
                    number,
                    f"{line.strip()!r} looks like a task heading but starts with {other['hashes']!r}; "
                    "a task heading is '## Task <id>: <title>' (escape it as '\\' + the line to keep it as text)",
                )
            continue
        match = _TASK_HEADING.match(line)
        if not match or not match["id"].strip():
            raise TaskFileError(
                path, number, f"malformed task heading {line.strip()!r} (expected '## Task <id>: <title>')"
            )
        task_id, title = match["id"].strip(), match["title"].strip()
        if problem := id_problem(task_id):
            raise TaskFileError(path, number, problem)
        if not title:
            raise TaskFileError(path, number, f"task {task_id}: empty title")
        headings.append((number, task_id, title, index + 1))
    if fences.fence is not None and any(_is_task_heading_line(line) for line in lines[fences.opened_at :]):
        # An unclosed fence hides every heading after it; losing tasks silently would be worse.
        raise TaskFileError(
            path, fences.opened_at, "code fence is never closed (the task headings after it are hidden)"
        )

    tasks: list[Task] = []
    try:
        for position, (number, task_id, title, first) in enumerate(headings):
            end = headings[position + 1][0] - 1 if position + 1 < len(headings) else len(lines)
            tasks.append(_parse_task_block(lines, first, end, number, task_id, title, path))
    except TaskFileError as exc:
        if misleveled is not None and misleveled.line is not None and misleveled.line < (exc.line or len(lines) + 1):
            raise misleveled from None
        raise
    if misleveled is not None:
        raise misleveled
    if validate:
        validate_tasks(tasks, path, known_ids)
    return tasks


def _parse_task_block(
    lines: list[str], first: int, end: int, heading_line: int, task_id: str, title: str, path: str
) -> Task:
    fields: dict[str, object] = {}
    seen_at: dict[str, int] = {}
    index = first
    while index < end and not lines[index].strip():
        index += 1
    while index < end and (match := _METADATA.match(lines[index].strip())):
        key, number = match["key"].lower(), index + 1
        if key in seen_at:
            raise TaskFileError(
                path, number, f"task {task_id}: '{key}' given twice (first at line {seen_at[key]})"
            )
        seen_at[key] = number
        value = _COMMENT.sub("", match["value"]).strip()
        if key == "depends":
            fields[key] = _parse_depends(value)
        elif key == "priority":
            fields[key] = _parse_priority(value, path, number)
        elif key == "touches":
            fields[key] = _split_paths(value)
        elif value:  # type
            fields[key] = value
        index += 1
    if index < end and (typo := _KEY_LIKE.match(lines[index].strip())) and lines[index].strip()[:1].isalpha():
        # Read as text, a misspelt key would drop a dependency or a priority without a word.
        key = typo["key"]
        if (near := nearest_key(key, _METADATA_KEYS)) is not None:
            raise TaskFileError(
                path,
                index + 1,
                f"task {task_id}: unknown key {key!r}; did you mean `{near}`? "
                f"(keys under a task heading: {', '.join(_METADATA_KEYS)})",
            )
    body = [_unescape_heading(line) for line in lines[index:end]]
    return Task(
        id=task_id,
        title=title,
        description=_strip_blank_edges(body),
        source=path,
        line=heading_line,
        **fields,
    )  # type: ignore[arg-type]


def _is_escaped_heading(line: str) -> bool:
    """`\\## Task ...` (any number of backslashes): a task heading escaped by render, read as text."""
    stripped = line.lstrip(" ")
    return stripped.startswith("\\") and _looks_like_task_heading(stripped.lstrip("\\"))


def _unescape_heading(line: str) -> str:
    if _is_escaped_heading(line):
        indent = len(line) - len(line.lstrip(" "))
        return line[:indent] + line[indent + 1 :]
    return line


def _escape_description(description: str) -> list[str]:
    """Body lines for `description`, with task-heading lookalikes escaped and any open fence closed."""
    lines = description.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    fences = _FenceTracker()
    out: list[str] = []
    for number, line in enumerate(lines, 1):
        inside = fences.feed(line, number)
        if not inside and (_looks_like_task_heading(line) or _is_escaped_heading(line)):
            indent = len(line) - len(line.lstrip(" "))
            line = line[:indent] + "\\" + line[indent:]
        out.append(line)
    if fences.fence is not None:
        # Otherwise the next task's heading would end up inside this task's code block.
        out.append(fences.fence)
    return out


def render_task_md(task: Task) -> str:
    """One task as a TASKS.md section (heading, metadata, blank line, body), ending in a newline."""
    lines = [f"## Task {task.id}: {task.title}"]
    if task.depends:
        lines.append("depends: " + ", ".join(task.depends))
    # Always written, so the metadata block is never empty and a body that starts with "type: ..."
    # can't be read back as metadata.
    lines.append(f"priority: {task.priority.label}")
    if task.touches:
        lines.append("touches: " + ", ".join(task.touches))
    if task.type != "feat":
        lines.append(f"type: {task.type}")
    if task.description.strip():
        lines.append("")
        lines.extend(_escape_description(_strip_blank_edges(task.description.split("\n"))))
    return "\n".join(lines) + "\n"


def render_tasks_md(tasks: Iterable[Task], header: str = "") -> str:
    """TASKS.md text for `tasks`; parse_tasks_md(render_tasks_md(ts)) gives `ts` back (source/line aside).

    `header` (e.g. "# Tasks\\n\\nintro") goes before the first task; it must not hold task headings.
    """
    sections = [header.rstrip("\n") + "\n"] if header.strip() else []
    sections.extend(render_task_md(task) for task in tasks)
    return "\n".join(sections)


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


# --- TOML ----------------------------------------------------------------------------------------------

_TOML_KEYS = ("id", "title", "description", "depends", "priority", "touches", "type")
_TOML_TABLE_HEADER = re.compile(r"""\s*\[\[\s*(task|"task"|'task')\s*\]\]""")


def _task_header_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if _TOML_TABLE_HEADER.match(line)]


def parse_tasks_toml(
    text: str, path: str = "tasks.toml", *, validate: bool = True, known_ids: Collection[str] = ()
) -> list[Task]:
    """Tasks from tasks.toml (`[[task]]` tables), in file order; errors name the table's line."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(path, None, f"invalid TOML: {exc}") from None
    unknown = [key for key in document if key != "task"]
    if unknown:
        raise TaskFileError(path, None, f"unknown key {unknown[0]!r} (expected [[task]] tables)")
    tables = document.get("task", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise TaskFileError(path, None, "'task' must be [[task]] tables")
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
    def fail(message: str) -> TaskFileError:
        return TaskFileError(path, line or None, message)

    for key in table:
        if key not in _TOML_KEYS:
            near = nearest_key(key, _TOML_KEYS)
            hint = f"; did you mean `{near}`?" if near else ""
            where = key_lines.get(key, line) if key_lines else line
            raise TaskFileError(
                path, where or None, f"unknown key {key!r} in [[task]]{hint} (keys: {', '.join(_TOML_KEYS)})"
            )
    raw_id = table.get("id")
    if raw_id is None:
        raise fail("[[task]] without an id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise fail(f"id must be a string or an integer, got {raw_id!r}")
    task_id = str(raw_id).strip()
    if problem := id_problem(task_id):
        raise fail(problem)

    def text_field(key: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise fail(f"task {task_id}: {key} must be a string, got {value!r}")
        return value

    def id_list(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, str | int) for v in value
        ):
            raise fail(f"task {task_id}: {key} must be a list of task ids, got {value!r}")
        return _dedupe(str(v).strip() for v in value)

    touches = table.get("touches", [])
    if not isinstance(touches, list) or not all(isinstance(t, str) for t in touches):
        raise fail(f"task {task_id}: touches must be a list of paths, got {touches!r}")
    return Task(
        id=task_id,
        title=text_field("title", "").strip(),
        description=_strip_blank_edges(text_field("description", "").split("\n")),
        depends=id_list("depends"),
        priority=_parse_priority(text_field("priority", "").strip(), path, line or 0),
        touches=tuple(t.strip() for t in touches if t.strip()),
        type=text_field("type", "feat").strip() or "feat",
        source=path,
        line=line,
    )


# --- files ---------------------------------------------------------------------------------------------


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
    parse = parse_tasks_toml if path.suffix.lower() == ".toml" else parse_tasks_md
    return parse(text, str(path), validate=validate, known_ids=known_ids)


# --- writing a priority back ---------------------------------------------------------------------------

_PRIORITY_LINE_MD = re.compile(r"(?P<head>\s*priority[ \t]*:[ \t]*)(?P<value>.*?)(?P<tail>(?:[ \t]+#(?:\s.*)?)?)$", re.IGNORECASE)
_PRIORITY_LINE_TOML = re.compile(r"(?P<head>\s*priority\s*=\s*)(?P<value>\"[^\"]*\"|'[^']*')(?P<tail>.*)$")


def with_priority_md(text: str, task_id: str, priority: Priority, path: str = "TASKS.md") -> str:
    """`text` with task `task_id`'s priority set, everything else (comments, spacing, order) as it was."""
    lines = text.split("\n")
    fences = _FenceTracker()
    heading = None
    for index, line in enumerate(lines):
        if fences.feed(line, index + 1) or not _is_task_heading_line(line):
            continue
        match = _TASK_HEADING.match(line)
        if match and match["id"].strip() == task_id:
            heading = index
            break
    if heading is None:
        raise TaskFileError(path, None, f"no task {task_id} in the file to set its priority")
    start = heading + 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    index = start
    while index < len(lines) and _METADATA.match(lines[index].strip()):
        if (found := _PRIORITY_LINE_MD.fullmatch(lines[index])) is not None:
            lines[index] = found["head"] + priority.label + found["tail"]
            return "\n".join(lines)
        index += 1
    # No priority line: the new one opens the metadata block (below the heading when there is none).
    at = start if index > start else heading + 1
    lines.insert(at, f"priority: {priority.label}")
    return "\n".join(lines)


def with_priority_toml(text: str, task_id: str, priority: Priority, path: str = "tasks.toml") -> str:
    """tasks.toml's counterpart of with_priority_md: one line changed or added in the task's table."""
    tables = parse_tasks_toml(text, path, validate=False)
    headers = _task_header_lines(text)
    position = next((i for i, task in enumerate(tables) if task.id == task_id), None)
    if position is None or len(headers) != len(tables):
        raise TaskFileError(path, None, f"no [[task]] table with id {task_id} to set its priority")
    lines = text.split("\n")
    header = headers[position]  # 1-based
    key_lines = _key_lines(lines, header)
    if "priority" in key_lines and (found := _PRIORITY_LINE_TOML.fullmatch(lines[key_lines["priority"] - 1])):
        lines[key_lines["priority"] - 1] = f'{found["head"]}"{priority.label}"{found["tail"]}'
    else:
        after = key_lines.get("title", key_lines.get("id", header))
        lines.insert(after, f'priority = "{priority.label}"')
    return "\n".join(lines)


def write_priority(path: Path, task_id: str, priority: Priority) -> str:
    """Set a task's priority in its task file, keeping the user's formatting; return the new text.

    The result is read back first: if it would not give the same tasks with the new priority, nothing
    is written and TaskFileError says why.
    """
    text, layout = _read_task_file(path)
    toml = path.suffix.lower() == ".toml"
    parse = parse_tasks_toml if toml else parse_tasks_md
    before = {t.id: t for t in parse(text, str(path), validate=False)}
    edited = (with_priority_toml if toml else with_priority_md)(text, task_id, priority, str(path))
    after = {t.id: t for t in parse(edited, str(path), validate=False)}
    expected = {tid: (task.priority if tid != task_id else priority) for tid, task in before.items()}
    unchanged = all(
        after.get(tid) is not None and after[tid].priority == expected[tid]
        and (after[tid].description, after[tid].depends, after[tid].touches)
        == (before[tid].description, before[tid].depends, before[tid].touches)
        for tid in before
    )
    if not unchanged or set(after) != set(before):
        raise TaskFileError(path, None, f"could not set task {task_id}'s priority without changing other text")
    if edited != text:
        _write_task_file(path, edited, layout)
    return edited
