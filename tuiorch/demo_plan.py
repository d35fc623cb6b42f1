"""What a prompt asks the demo agent (tuiorch.demo_agent) to do: pure parsing, no side effects.

A prompt rendered from the built-in template (tuiorch.prompt) names the worktree, branch, task id, title,
type and body; the body's directives say what to do:

    ```write path/to/file          ```append path/to/file
    contents                       more contents
    ```                            ```

    exit: N      exit with N after the writes (no commit unless N is 0)
    sleep: S     sleep S seconds midway            hang         sleep forever midway
    linger: S    after committing, stay S seconds before exiting (a branch with commits, still running)
    lines: N     print N filler lines midway       rate: N      ... at N lines a second
    no-commit    leave the changes uncommitted     nothing      change nothing
    say: TEXT    print TEXT on stdout first         warn: TEXT   print TEXT on stderr first
                 (in order; e.g. a CLI's JSON events, to try an output parser)

A conflict-resolver prompt (tuiorch.prompt.RESOLVE_TEMPLATE) names the worktree and the conflicting paths;
strip_conflict_markers keeps both sides of each hunk.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tuiorch.prompt import (
    BODY_END,
    BODY_START,
    BRANCH_MARKER,
    PATHS_HEADING,
    RESOLVE_MARKER,
    TASK_HEADING,
    TASK_ID_MARKER,
    TYPE_MARKER,
    WORKTREE_MARKER,
)

_HEADING = re.compile(r"^## Your Task: (?P<title>.*) \(Task (?P<id>[^()\s]+)\)\s*$")
_ANY_FENCE = re.compile(r"^`{3,}")
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})(?P<mode>write|append)[ \t]+(?P<path>\S.*?)\s*$")
_VALUE_DIRECTIVE = re.compile(r"^(?P<key>exit|sleep|linger|lines|rate):[ \t]*(?P<value>\S+)$")
#: A conflict marker line, and the side of the hunk the lines after it belong to.
_CONFLICT_MARKER = re.compile(r"^(?:(?:<{7}|\|{7}|>{7})(?= |\Z)|={7}\Z)")
_SIDE_AFTER = {"<<<<<<<": "ours", "|||||||": "base", "=======": "theirs", ">>>>>>>": None}
_FLAG_DIRECTIVES = ("no-commit", "nothing", "hang")
_SAY_DIRECTIVE = re.compile(r"^(?P<key>say|warn):[ \t](?P<text>.*)$")


class DemoError(Exception):
    """The prompt or the task body cannot be followed; str() is printed and the agent exits 2."""


@dataclass(frozen=True)
class FileEdit:
    mode: str  # "write" | "append"
    path: str
    content: str


@dataclass
class Plan:
    """What a task body asks for."""

    edits: list[FileEdit] = field(default_factory=list)
    exit_code: int | None = None
    sleep: float = 0.0
    linger: float = 0.0
    lines: int = 0
    rate: float | None = None
    no_commit: bool = False
    nothing: bool = False
    hang: bool = False
    #: ("say" | "warn", text): lines printed on stdout or stderr before any work.
    said: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _ValueRule:
    """How a value directive (exit: N, sleep: S, ...) is read and which Plan field it sets."""

    field: str
    convert: Callable[[str], float]
    kind: str  # what the error says was expected
    maximum: float = math.inf
    refused: tuple[float, ...] = ()

    def accepts(self, number: float) -> bool:
        return not (number < 0 or number > self.maximum or number in self.refused)


_VALUE_RULES = {
    "exit": _ValueRule("exit_code", int, "a whole number", maximum=255),
    "sleep": _ValueRule("sleep", float, "a number"),
    "linger": _ValueRule("linger", float, "a number"),
    "lines": _ValueRule("lines", int, "a whole number"),
    "rate": _ValueRule("rate", float, "a number", refused=(0,)),
}


@dataclass(frozen=True)
class TaskPrompt:
    worktree: Path
    branch: str
    task_id: str
    title: str
    type: str
    body: str


@dataclass(frozen=True)
class ResolvePrompt:
    worktree: Path
    task_id: str
    paths: tuple[str, ...]


def _marker_value(lines: list[str], marker: str, default: str = "") -> str:
    """The text after the first line starting with marker; default when there is none or it is empty."""
    for line in lines:
        if line.startswith(marker):
            return line[len(marker) :].strip() or default
    return default


def parse_prompt(text: str, cwd: Path) -> TaskPrompt | ResolvePrompt:
    lines = text.replace("\r\n", "\n").split("\n")
    if any(line.startswith(RESOLVE_MARKER) for line in lines):
        return _parse_resolve(lines, Path(_marker_value(lines, RESOLVE_MARKER, str(cwd))))
    # Header markers come before the task text, so their first occurrence is the template's own.
    heading = _task_heading(lines)
    return TaskPrompt(
        worktree=Path(_marker_value(lines, WORKTREE_MARKER, str(cwd))),
        branch=_marker_value(lines, BRANCH_MARKER).rstrip("."),
        task_id=_marker_value(lines, TASK_ID_MARKER, heading["id"]),
        title=heading["title"].strip(),
        type=_marker_value(lines, TYPE_MARKER, "feat"),
        body=_task_body(text),
    )


def _task_heading(lines: list[str]) -> re.Match[str]:
    for line in lines:
        if line.startswith(TASK_HEADING) and (heading := _HEADING.match(line)):
            return heading
    raise DemoError(
        "cannot find the task heading ('## Your Task: TITLE (Task ID)') in the prompt; "
        "the demo agent reads prompts rendered from the built-in template"
    )


def _task_body(text: str) -> str:
    """The text between the body markers (all of it without them)."""
    start = text.find(BODY_START + "\n")
    if start < 0:
        return text
    # The body ends at the LAST end marker: the template's comes after the task text, which may hold one.
    end = text.rfind("\n" + BODY_END)
    begin = start + len(BODY_START) + 1
    return text[begin:end] if end > start else text[begin:]


def _parse_resolve(lines: list[str], worktree: Path) -> ResolvePrompt:
    task_line = next((line for line in lines if "work for task " in line), "")
    found = re.search(r"work for task (\S+) ", task_line)
    try:
        first = lines.index(PATHS_HEADING) + 1
    except ValueError:
        raise DemoError(f"resolve prompt has no '{PATHS_HEADING}' section") from None
    listed = itertools.takewhile(lambda line: line.startswith("- "), lines[first:])
    paths = tuple(line[2:] for line in listed)
    if not paths:
        raise DemoError("resolve prompt lists no conflicting paths")
    return ResolvePrompt(worktree, found.group(1) if found else "", paths)


def parse_body(body: str) -> Plan:
    """Directives of a task body; DemoError for an unterminated block or a bad value."""
    plan = Plan()
    lines = body.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if opened := _FENCE_OPEN.match(stripped):
            edit, index = _read_edit(opened, lines, index + 1)
            plan.edits.append(edit)
        elif other_fence := _ANY_FENCE.match(stripped):
            # Some other code block (an example, say): its lines are not directives.
            index = _block_end(lines, index + 1, other_fence.group(0)) + 1
        else:
            _apply_directive(plan, lines[index])
            index += 1
    return plan


def _block_end(lines: list[str], start: int, fence: str) -> int:
    """The index of the line closing a code block whose contents begin at start; len(lines) if none does."""
    end = start
    while end < len(lines) and lines[end].strip() != fence:
        end += 1
    return end


def _read_edit(opened: re.Match[str], lines: list[str], start: int) -> tuple[FileEdit, int]:
    """The edit of a write/append block whose contents begin at start, and the index after its closing fence."""
    fence = opened["fence"]
    end = _block_end(lines, start, fence)
    if end >= len(lines):
        raise DemoError(f"the {opened['mode']} block for {opened['path']} is never closed with {fence}")
    text = "".join(part + "\n" for part in lines[start:end])
    return FileEdit(opened["mode"], check_path(opened["path"]), text), end + 1


def _apply_directive(plan: Plan, line: str) -> None:
    stripped = line.strip()
    if said := _SAY_DIRECTIVE.match(line):
        plan.said.append((said["key"], said["text"]))
    elif stripped in _FLAG_DIRECTIVES:
        setattr(plan, stripped.replace("-", "_"), True)
    elif directive := _VALUE_DIRECTIVE.match(stripped):
        _apply_value(plan, directive["key"], directive["value"])


def _apply_value(plan: Plan, key: str, value: str) -> None:
    rule = _VALUE_RULES[key]
    try:
        number = rule.convert(value)
    except ValueError:
        raise DemoError(f"'{key}: {value}': expected {rule.kind}") from None
    if not rule.accepts(number):
        raise DemoError(f"'{key}: {value}': out of range")
    setattr(plan, rule.field, number)


def check_path(path: str) -> str:
    """A relative path inside the worktree, or DemoError."""
    pure = PurePosixPath(path)
    if "\\" in path or pure.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise DemoError(f"refusing to write {path!r}: paths must be relative to the worktree")
    if ".." in pure.parts:
        raise DemoError(f"refusing to write {path!r}: '..' would leave the worktree")
    if not pure.parts or pure.parts[0] == ".git":
        raise DemoError(f"refusing to write {path!r}: not a file in the worktree")
    return pure.as_posix()


def strip_conflict_markers(text: str) -> str:
    """Keep both sides of every conflict hunk, ours first then theirs; drop diff3 base sections."""
    out: list[str] = []
    side: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _CONFLICT_MARKER.match(line.rstrip("\r\n"))
        # A hunk opens only with <<<<<<<; the other markers mean something only inside one.
        if marker and (side or marker[0] == "<<<<<<<"):
            side = _SIDE_AFTER[marker[0]]
        elif side != "base":
            out.append(line)
    return "".join(out)
