"""TASKS.md: read it into tasks, write tasks back as Markdown, and set one task's priority in place."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import NamedTuple

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
_PRIORITY_LINE_MD = re.compile(
    r"(?P<head>\s*priority[ \t]*:[ \t]*)(?P<value>.*?)(?P<tail>(?:[ \t]+#(?:\s.*)?)?)$", re.IGNORECASE
)


class _FenceTracker:
    """Follows CommonMark fenced code blocks line by line, so headings inside them stay body text."""

    def __init__(self) -> None:
        self.fence: str | None = None  # the opening fence while inside a block
        self.opened_at = 0

    def feed(self, line: str, number: int) -> bool:
        """Take the next line; True if it is inside (or opens or closes) a fenced block."""
        match = _FENCE.match(line)
        if self.fence is not None:
            if _closes_fence(match, self.fence):
                self.fence = None
            return True
        if _opens_fence(match):
            self.fence, self.opened_at = match["fence"], number  # type: ignore[index]
            return True
        return False


def _closes_fence(match: re.Match[str] | None, fence: str) -> bool:
    return (
        match is not None
        and match["fence"][0] == fence[0]
        and len(match["fence"]) >= len(fence)
        and not match["info"].strip()
    )


def _opens_fence(match: re.Match[str] | None) -> bool:
    # A backtick fence's info string can't contain backticks (CommonMark).
    return match is not None and not (match["fence"][0] == "`" and "`" in match["info"])


def _outside_fences(lines: list[str], fences: _FenceTracker) -> Iterator[tuple[int, str]]:
    """(index, line) for each line that is not in a fenced code block (nor opens or closes one)."""
    for index, line in enumerate(lines):
        if not fences.feed(line, index + 1):
            yield index, line


def _first_nonblank(lines: list[str], start: int, end: int) -> int:
    while start < end and not lines[start].strip():
        start += 1
    return start


def _metadata_lines(lines: list[str], start: int, end: int) -> list[re.Match[str]]:
    """The metadata lines from `start` on: each a known `key: value`, up to the first line that is not."""
    found: list[re.Match[str]] = []
    for line in lines[start:end]:
        if (match := _METADATA.match(line.strip())) is None:
            break
        found.append(match)
    return found


def _is_task_heading_line(line: str) -> bool:
    return _TASK_HEADING_START.match(line) is not None


def _looks_like_task_heading(line: str) -> bool:
    """A task heading, or a heading of another level that would be mistaken for one."""
    return _is_task_heading_line(line) or _OTHER_LEVEL_TASK.match(line) is not None


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _parse_depends(value: str) -> tuple[str, ...]:
    if value.lower() == "none":
        return ()
    return dedupe(d for d in re.split(r"[,\s]+", value) if d)


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
    headings, misleveled = _scan_headings(lines, path)
    tasks = _read_blocks(lines, headings, path, misleveled)
    if validate:
        validate_tasks(tasks, path, known_ids)
    return tasks


class _Heading(NamedTuple):
    number: int  # the heading's line number
    task_id: str
    title: str
    first: int  # index of the first line after the heading


def _scan_headings(lines: list[str], path: str) -> tuple[list[_Heading], TaskFileError | None]:
    """The task headings outside code fences, and the first heading of another level that reads like one
    (reported by the caller only if no earlier mistake is found)."""
    headings: list[_Heading] = []
    misleveled: TaskFileError | None = None
    fences = _FenceTracker()
    for index, line in _outside_fences(lines, fences):
        if _is_task_heading_line(line):
            headings.append(_read_heading(line, index + 1, path))
        elif misleveled is None:
            misleveled = _misleveled_heading(line, index + 1, path)
    _refuse_unclosed_fence(fences, lines, path)
    return headings, misleveled


def _refuse_unclosed_fence(fences: _FenceTracker, lines: list[str], path: str) -> None:
    """An unclosed fence hides every heading after it; losing tasks silently would be worse."""
    if fences.fence is not None and any(_is_task_heading_line(line) for line in lines[fences.opened_at :]):
        raise TaskFileError(
            path, fences.opened_at, "code fence is never closed (the task headings after it are hidden)"
        )


def _read_heading(line: str, number: int, path: str) -> _Heading:
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
    return _Heading(number, task_id, title, number)


def _misleveled_heading(line: str, number: int, path: str) -> TaskFileError | None:
    """An error for a `# Task 3`-style line, which read as text would silently join the task above it."""
    if (other := _OTHER_LEVEL_TASK.match(line)) is None:
        return None
    return TaskFileError(
        path,
        number,
        f"{line.strip()!r} looks like a task heading but starts with {other['hashes']!r}; "
        "a task heading is '## Task <id>: <title>' (escape it as '\\' + the line to keep it as text)",
    )


def _read_blocks(
    lines: list[str], headings: list[_Heading], path: str, misleveled: TaskFileError | None
) -> list[Task]:
    """One task per heading; of two mistakes, the one earlier in the file is raised."""
    ends = [heading.number - 1 for heading in headings[1:]] + [len(lines)]
    try:
        tasks = [_parse_task_block(lines, heading, end, path) for heading, end in zip(headings, ends, strict=False)]
    except TaskFileError as exc:
        if _comes_first(misleveled, exc, len(lines)):
            raise misleveled from None
        raise
    if misleveled is not None:
        raise misleveled
    return tasks


def _comes_first(error: TaskFileError | None, other: TaskFileError, line_count: int) -> bool:
    """Whether `error` is about an earlier line than `other` (one without a line counts as after the file)."""
    after_the_file = line_count + 1
    return error is not None and (error.line or after_the_file) < (other.line or after_the_file)


def _parse_task_block(lines: list[str], heading: _Heading, end: int, path: str) -> Task:
    start = _first_nonblank(lines, heading.first, end)
    metadata = _metadata_lines(lines, start, end)
    stop = start + len(metadata)
    fields = _read_metadata(metadata, start + 1, heading.task_id, path)
    if stop < end:
        _refuse_misspelt_key(lines[stop].strip(), stop + 1, heading.task_id, path)
    body = [_unescape_heading(line) for line in lines[stop:end]]
    return Task(
        id=heading.task_id,
        title=heading.title,
        description=strip_blank_edges(body),
        source=path,
        line=heading.number,
        **fields,
    )  # type: ignore[arg-type]


def _read_metadata(metadata: list[re.Match[str]], first_number: int, task_id: str, path: str) -> dict[str, object]:
    """The Task fields the metadata lines (numbered from `first_number`) give."""
    fields: dict[str, object] = {}
    seen_at: dict[str, int] = {}
    for number, match in enumerate(metadata, first_number):
        key = match["key"].lower()
        if key in seen_at:
            raise TaskFileError(path, number, f"task {task_id}: '{key}' given twice (first at line {seen_at[key]})")
        seen_at[key] = number
        value = _COMMENT.sub("", match["value"]).strip()
        if key != "type" or value:
            fields[key] = _METADATA_READERS[key](value, path, number)
    return fields


_METADATA_READERS: dict[str, Callable[[str, str, int], object]] = {
    "depends": lambda value, path, line: _parse_depends(value),
    "priority": parse_priority,
    "touches": lambda value, path, line: _split_paths(value),
    "type": lambda value, path, line: value,
}


def _refuse_misspelt_key(text: str, number: int, task_id: str, path: str) -> None:
    """The first line after the metadata looks like a misspelt key: read as text, it would drop a
    dependency or a priority without a word."""
    typo = _KEY_LIKE.match(text)
    if typo is None or not text[:1].isalpha():
        return
    key = typo["key"]
    if (near := nearest_key(key, _METADATA_KEYS)) is not None:
        raise TaskFileError(
            path,
            number,
            f"task {task_id}: unknown key {key!r}; did you mean `{near}`? "
            f"(keys under a task heading: {', '.join(_METADATA_KEYS)})",
        )


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
        lines.extend(_escape_description(strip_blank_edges(task.description.split("\n"))))
    return "\n".join(lines) + "\n"


def render_tasks_md(tasks: Iterable[Task], header: str = "") -> str:
    """TASKS.md text for `tasks`; parse_tasks_md(render_tasks_md(ts)) gives `ts` back (source/line aside).

    `header` (e.g. "# Tasks\\n\\nintro") goes before the first task; it must not hold task headings.
    """
    sections = [header.rstrip("\n") + "\n"] if header.strip() else []
    sections.extend(render_task_md(task) for task in tasks)
    return "\n".join(sections)


def with_priority_md(text: str, task_id: str, priority: Priority, path: str = "TASKS.md") -> str:
    """`text` with task `task_id`'s priority set, everything else (comments, spacing, order) as it was."""
    lines = text.split("\n")
    heading = _heading_index(lines, task_id)
    if heading is None:
        raise TaskFileError(path, None, f"no task {task_id} in the file to set its priority")
    start = _first_nonblank(lines, heading + 1, len(lines))
    stop = start + len(_metadata_lines(lines, start, len(lines)))
    for index in range(start, stop):
        if (found := _PRIORITY_LINE_MD.fullmatch(lines[index])) is not None:
            lines[index] = found["head"] + priority.label + found["tail"]
            return "\n".join(lines)
    # No priority line: the new one opens the metadata block (below the heading when there is none).
    lines.insert(start if stop > start else heading + 1, f"priority: {priority.label}")
    return "\n".join(lines)


def _heading_index(lines: list[str], task_id: str) -> int | None:
    """Where task `task_id`'s heading is, outside code fences."""
    for index, line in _outside_fences(lines, _FenceTracker()):
        match = _TASK_HEADING.match(line)
        if match and match["id"].strip() == task_id:
            return index
    return None
