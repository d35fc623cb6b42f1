"""The built-in demo agent: a real, deterministic program that does what a task body says. No LLM.

    python -m tuiorch.demo_agent PROMPT_FILE      (or - to read the prompt on stdin)

It reads a prompt rendered from the built-in template (tuiorch.prompt), finds the worktree, branch, task
id, title, type and body, and follows the body's directives:

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

Given a conflict-resolver prompt (tuiorch.prompt.RESOLVE_TEMPLATE), it resolves each listed file by
keeping both sides (ours, then theirs), `git add`s them and commits the merge.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
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

AGENT_NAME = "tuiorch demo agent"
AGENT_EMAIL = "demo@tuiorch.invalid"
IDENTITY_ENV = {
    "GIT_AUTHOR_NAME": AGENT_NAME,
    "GIT_AUTHOR_EMAIL": AGENT_EMAIL,
    "GIT_COMMITTER_NAME": AGENT_NAME,
    "GIT_COMMITTER_EMAIL": AGENT_EMAIL,
}

_HEADING = re.compile(r"^## Your Task: (?P<title>.*) \(Task (?P<id>[^()\s]+)\)\s*$")
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})(?P<mode>write|append)[ \t]+(?P<path>\S.*?)\s*$")
_VALUE_DIRECTIVE = re.compile(r"^(?P<key>exit|sleep|linger|lines|rate):[ \t]*(?P<value>\S+)$")
_FLAG_DIRECTIVES = ("no-commit", "nothing", "hang")
#: Seconds between lines given by say:/warn:.
SAY_PAUSE = 0.15
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


# -- parsing (pure) -----------------------------------------------------------------------------------------


def _marker_value(lines: list[str], marker: str) -> str | None:
    for line in lines:
        if line.startswith(marker):
            return line[len(marker) :].strip()
    return None


def parse_prompt(text: str, cwd: Path) -> TaskPrompt | ResolvePrompt:
    lines = text.replace("\r\n", "\n").split("\n")
    resolve_at = _marker_value(lines, RESOLVE_MARKER)
    if resolve_at is not None:
        return _parse_resolve(lines, Path(resolve_at or cwd))

    # Header markers come before the task text, so their first occurrence is the template's own.
    heading = next((m for line in lines if line.startswith(TASK_HEADING) and (m := _HEADING.match(line))), None)
    if heading is None:
        raise DemoError(
            "cannot find the task heading ('## Your Task: TITLE (Task ID)') in the prompt; "
            "the demo agent reads prompts rendered from the built-in template"
        )
    worktree = Path(_marker_value(lines, WORKTREE_MARKER) or cwd)
    branch = (_marker_value(lines, BRANCH_MARKER) or "").rstrip(".")
    task_id = _marker_value(lines, TASK_ID_MARKER) or heading["id"]
    task_type = _marker_value(lines, TYPE_MARKER) or "feat"

    # The body ends at the LAST end marker: the template's comes after the task text, which may hold one.
    start = text.find(BODY_START + "\n")
    end = text.rfind("\n" + BODY_END)
    if start >= 0 and end > start:
        body = text[start + len(BODY_START) + 1 : end]
    elif start >= 0:
        body = text[start + len(BODY_START) + 1 :]
    else:
        body = text
    return TaskPrompt(worktree, branch, task_id, heading["title"].strip(), task_type, body)


def _parse_resolve(lines: list[str], worktree: Path) -> ResolvePrompt:
    task_id = ""
    if (found := next((re.search(r"work for task (\S+) ", line) for line in lines if "work for task " in line), None)):
        task_id = found.group(1)
    paths: list[str] = []
    try:
        index = lines.index(PATHS_HEADING) + 1
    except ValueError:
        raise DemoError(f"resolve prompt has no '{PATHS_HEADING}' section") from None
    while index < len(lines) and lines[index].startswith("- "):
        paths.append(lines[index][2:])
        index += 1
    if not paths:
        raise DemoError("resolve prompt lists no conflicting paths")
    return ResolvePrompt(worktree, task_id, tuple(paths))


def parse_body(body: str) -> Plan:
    """Directives of a task body; DemoError for an unterminated block or a bad value."""
    plan = Plan()
    lines = body.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        opened = _FENCE_OPEN.match(line.strip())
        if opened:
            fence = opened["fence"]
            content: list[str] = []
            while index < len(lines) and lines[index].strip() != fence:
                content.append(lines[index])
                index += 1
            if index >= len(lines):
                raise DemoError(f"the {opened['mode']} block for {opened['path']} is never closed with {fence}")
            index += 1
            text = "".join(part + "\n" for part in content)
            plan.edits.append(FileEdit(opened["mode"], check_path(opened["path"]), text))
            continue
        stripped = line.strip()
        if other_fence := re.match(r"^`{3,}", stripped):
            # Some other code block (an example, say): its lines are not directives.
            while index < len(lines) and lines[index].strip() != other_fence.group(0):
                index += 1
            index += 1
            continue
        if said := _SAY_DIRECTIVE.match(line):
            plan.said.append((said["key"], said["text"]))
        elif stripped in _FLAG_DIRECTIVES:
            setattr(plan, stripped.replace("-", "_"), True)
        elif directive := _VALUE_DIRECTIVE.match(stripped):
            _apply_value(plan, directive["key"], directive["value"])
    return plan


def _apply_value(plan: Plan, key: str, value: str) -> None:
    try:
        number = float(value) if key in ("sleep", "linger", "rate") else int(value)
    except ValueError:
        kind = "a number" if key in ("sleep", "linger", "rate") else "a whole number"
        raise DemoError(f"'{key}: {value}': expected {kind}") from None
    if number < 0 or (key == "exit" and number > 255) or (key == "rate" and number == 0):
        raise DemoError(f"'{key}: {value}': out of range")
    if key == "exit":
        plan.exit_code = int(number)
    elif key == "sleep":
        plan.sleep = float(number)
    elif key == "linger":
        plan.linger = float(number)
    elif key == "lines":
        plan.lines = int(number)
    else:
        plan.rate = float(number)


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


def _inside(worktree: Path, relative: str) -> Path:
    target = worktree / relative
    # Symlinks in the worktree could still point out of it.
    resolved_root = worktree.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise DemoError(f"refusing to write {relative!r}: it resolves outside the worktree")
    return target


def strip_conflict_markers(text: str) -> str:
    """Keep both sides of every conflict hunk, ours first then theirs; drop diff3 base sections."""
    out: list[str] = []
    side: str | None = None
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if bare.startswith("<<<<<<<") and bare[7:8] in ("", " "):
            side = "ours"
        elif side and bare.startswith("|||||||") and bare[7:8] in ("", " "):
            side = "base"
        elif side and bare == "=======":
            side = "theirs"
        elif side and bare.startswith(">>>>>>>") and bare[7:8] in ("", " "):
            side = None
        elif side != "base":
            out.append(line)
    return "".join(out)


# -- side effects -------------------------------------------------------------------------------------------


def say(line: str) -> None:
    print(line, flush=True)


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("TUIORCH_DEMO_DELAY", "0.3")))
    except ValueError:
        return 0.3


def git(worktree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", *args],
        cwd=worktree,
        env={**os.environ, **IDENTITY_ENV},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise DemoError(f"git {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done


def commit_message(prompt: TaskPrompt) -> str:
    return (
        f"{prompt.type}: {prompt.title}\n\nRefs: TASKS.md#task-{prompt.task_id}\n"
        f"Co-Authored-By: {AGENT_NAME} <{AGENT_EMAIL}>\n"
    )


def _midway(plan: Plan) -> None:
    if plan.sleep:
        say(f"thinking for {plan.sleep:g} s")
        time.sleep(plan.sleep)
    if plan.lines:
        pause = 1.0 / plan.rate if plan.rate else 0.0
        for number in range(1, plan.lines + 1):
            sys.stdout.write(f"demo output line {number} of {plan.lines}\n")
            if pause:
                sys.stdout.flush()
                time.sleep(pause)
        sys.stdout.flush()
    if plan.hang:
        say("waiting forever (hang)")
        while True:
            time.sleep(3600)


def run_task(prompt: TaskPrompt) -> int:
    plan = parse_body(prompt.body)
    delay = _delay()
    worktree = prompt.worktree
    if not worktree.is_dir():
        raise DemoError(f"worktree does not exist: {worktree}")
    edits = [] if plan.nothing else plan.edits
    total = len(edits) + 2
    say(f"demo agent: task {prompt.task_id}: {prompt.title}")
    say(f"reading task ({len(edits)} file edit(s)) in {worktree} on branch {prompt.branch or '?'}")
    say(f"PROGRESS: 1/{total} read task")
    for stream, text in plan.said:
        print(text, file=sys.stdout if stream == "say" else sys.stderr, flush=True)
        time.sleep(SAY_PAUSE)  # a CLI's events come apart, each read on its own
    time.sleep(delay)
    targets = [_inside(worktree, edit.path) for edit in edits]
    midway_at = len(edits) // 2
    for step, (edit, target) in enumerate(zip(edits, targets, strict=True)):
        if step == midway_at:
            _midway(plan)
        say(f"{'writing' if edit.mode == 'write' else 'appending to'} {edit.path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w" if edit.mode == "write" else "a", encoding="utf-8", newline="") as handle:
            handle.write(edit.content)
        say(f"PROGRESS: {step + 2}/{total} {edit.mode} {edit.path}")
        time.sleep(delay)
    if not edits:
        _midway(plan)

    if plan.exit_code:
        say(f"giving up: exiting with {plan.exit_code}")
        return plan.exit_code
    if plan.nothing:
        say("nothing to do")
        return 0
    if plan.no_commit:
        say("leaving the changes uncommitted")
        return 0
    git(worktree, "add", "-A")
    if git(worktree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        say("nothing changed, nothing to commit")
        return 0
    git(worktree, "commit", "-q", "-m", commit_message(prompt))
    sha = git(worktree, "rev-parse", "--short", "HEAD").stdout.strip()
    say(f"committed {sha}")
    say(f"PROGRESS: {total}/{total} committed")
    if plan.linger:
        say(f"reviewing the work for {plan.linger:g} s")
        time.sleep(plan.linger)
    return 0


def run_resolve(prompt: ResolvePrompt) -> int:
    delay = _delay()
    worktree = prompt.worktree
    if not worktree.is_dir():
        raise DemoError(f"worktree does not exist: {worktree}")
    total = len(prompt.paths) + 1
    say(f"demo agent: resolving {len(prompt.paths)} conflicting path(s) in {worktree}")
    for step, path in enumerate(prompt.paths, 1):
        target = _inside(worktree, check_path(path))
        if target.is_file():
            text = target.read_text(encoding="utf-8", errors="surrogateescape")
            target.write_text(strip_conflict_markers(text), encoding="utf-8", errors="surrogateescape")
            git(worktree, "add", "--", path)
            say(f"kept both sides of {path}")
        else:
            git(worktree, "rm", "-q", "--cached", "--ignore-unmatch", "--", path)
            say(f"{path} was deleted on one side: left deleted")
        say(f"PROGRESS: {step}/{total} resolved {path}")
        time.sleep(delay)
    merging = git(worktree, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0
    if merging:
        git(worktree, "commit", "-q", "--no-edit")
    elif git(worktree, "diff", "--cached", "--quiet", check=False).returncode != 0:
        task = f" for task {prompt.task_id}" if prompt.task_id else ""
        git(worktree, "commit", "-q", "-m", f"fix: resolve merge conflicts{task}")
    else:
        say("nothing left to commit")
        return 0
    say(f"committed the resolution {git(worktree, 'rev-parse', '--short', 'HEAD').stdout.strip()}")
    say(f"PROGRESS: {total}/{total} committed")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m tuiorch.demo_agent PROMPT_FILE", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"demo agent: cannot read prompt file {args[0]}: {exc}", file=sys.stderr)
        return 2
    try:
        prompt = parse_prompt(text, Path.cwd())
        if isinstance(prompt, ResolvePrompt):
            return run_resolve(prompt)
        return run_task(prompt)
    except DemoError as exc:
        print(f"demo agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
