"""The built-in demo agent: a real, deterministic program that does what a task body says. No LLM.

    python -m tuiorch.demo_agent PROMPT_FILE      (or - to read the prompt on stdin)

It reads a prompt rendered from the built-in template (tuiorch.prompt), finds the worktree, branch, task
id, title, type and body, and follows the body's directives (listed in tuiorch.demo_plan): file writes and
appends, exit:, sleep:, hang, linger:, lines:, rate:, no-commit, nothing, say:, warn:.

Given a conflict-resolver prompt (tuiorch.prompt.RESOLVE_TEMPLATE), it resolves each listed file by
keeping both sides (ours, then theirs), `git add`s them and commits the merge.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tuiorch.demo_plan import (
    DemoError,
    FileEdit,
    Plan,
    ResolvePrompt,
    TaskPrompt,
    check_path,
    parse_body,
    parse_prompt,
    strip_conflict_markers,
)

AGENT_NAME = "tuiorch demo agent"
AGENT_EMAIL = "demo@tuiorch.invalid"
IDENTITY_ENV = {
    "GIT_AUTHOR_NAME": AGENT_NAME,
    "GIT_AUTHOR_EMAIL": AGENT_EMAIL,
    "GIT_COMMITTER_NAME": AGENT_NAME,
    "GIT_COMMITTER_EMAIL": AGENT_EMAIL,
}

#: Seconds between lines given by say:/warn:.
SAY_PAUSE = 0.15


def _inside(worktree: Path, relative: str) -> Path:
    target = worktree / relative
    # Symlinks in the worktree could still point out of it.
    resolved_root = worktree.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise DemoError(f"refusing to write {relative!r}: it resolves outside the worktree")
    return target


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
        _print_filler(plan.lines, plan.rate)
    if plan.hang:
        say("waiting forever (hang)")
        while True:
            time.sleep(3600)


def _print_filler(count: int, rate: float | None) -> None:
    pause = 1.0 / rate if rate else 0.0
    for number in range(1, count + 1):
        sys.stdout.write(f"demo output line {number} of {count}\n")
        if pause:
            sys.stdout.flush()
            time.sleep(pause)
    sys.stdout.flush()


def _existing_worktree(worktree: Path) -> Path:
    if not worktree.is_dir():
        raise DemoError(f"worktree does not exist: {worktree}")
    return worktree


#: Each edit mode: what the agent says it is doing, and how the file is opened.
_EDIT_MODES = {"write": ("writing", "w"), "append": ("appending to", "a")}


def _edit_files(edits: list[tuple[FileEdit, Path]], first_step: int, total: int, delay: float) -> None:
    for step, (edit, target) in enumerate(edits, first_step):
        doing, open_mode = _EDIT_MODES[edit.mode]
        say(f"{doing} {edit.path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, open_mode, encoding="utf-8", newline="") as handle:
            handle.write(edit.content)
        say(f"PROGRESS: {step + 2}/{total} {edit.mode} {edit.path}")
        time.sleep(delay)


def _stop_before_commit(plan: Plan) -> int | None:
    """The exit status when the body asks for no commit; None to commit."""
    if plan.exit_code:
        say(f"giving up: exiting with {plan.exit_code}")
        return plan.exit_code
    if plan.nothing:
        say("nothing to do")
        return 0
    if plan.no_commit:
        say("leaving the changes uncommitted")
        return 0
    return None


def _has_staged_changes(worktree: Path) -> bool:
    return git(worktree, "diff", "--cached", "--quiet", check=False).returncode != 0


def _short_head(worktree: Path) -> str:
    return git(worktree, "rev-parse", "--short", "HEAD").stdout.strip()


def _commit_task(prompt: TaskPrompt, plan: Plan, total: int) -> int:
    worktree = prompt.worktree
    git(worktree, "add", "-A")
    if not _has_staged_changes(worktree):
        say("nothing changed, nothing to commit")
        return 0
    git(worktree, "commit", "-q", "-m", commit_message(prompt))
    say(f"committed {_short_head(worktree)}")
    say(f"PROGRESS: {total}/{total} committed")
    if plan.linger:
        say(f"reviewing the work for {plan.linger:g} s")
        time.sleep(plan.linger)
    return 0


def run_task(prompt: TaskPrompt) -> int:
    plan = parse_body(prompt.body)
    delay = _delay()
    worktree = _existing_worktree(prompt.worktree)
    edits = [] if plan.nothing else plan.edits
    total = len(edits) + 2
    say(f"demo agent: task {prompt.task_id}: {prompt.title}")
    say(f"reading task ({len(edits)} file edit(s)) in {worktree} on branch {prompt.branch or '?'}")
    say(f"PROGRESS: 1/{total} read task")
    for stream, text in plan.said:
        print(text, file=sys.stdout if stream == "say" else sys.stderr, flush=True)
        time.sleep(SAY_PAUSE)  # a CLI's events come apart, each read on its own
    time.sleep(delay)
    # Every target is checked before anything is written.
    targeted = [(edit, _inside(worktree, edit.path)) for edit in edits]
    half = len(targeted) // 2
    _edit_files(targeted[:half], 0, total, delay)
    _midway(plan)
    _edit_files(targeted[half:], half, total, delay)
    stop = _stop_before_commit(plan)
    return stop if stop is not None else _commit_task(prompt, plan, total)


def _resolve_path(worktree: Path, path: str) -> None:
    target = _inside(worktree, check_path(path))
    if not target.is_file():
        git(worktree, "rm", "-q", "--cached", "--ignore-unmatch", "--", path)
        say(f"{path} was deleted on one side: left deleted")
        return
    text = target.read_text(encoding="utf-8", errors="surrogateescape")
    target.write_text(strip_conflict_markers(text), encoding="utf-8", errors="surrogateescape")
    git(worktree, "add", "--", path)
    say(f"kept both sides of {path}")


def _commit_resolution(prompt: ResolvePrompt) -> bool:
    """Commit the merge (or, outside one, the staged resolution); False when there is nothing to commit."""
    worktree = prompt.worktree
    if git(worktree, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0:
        git(worktree, "commit", "-q", "--no-edit")
        return True
    if not _has_staged_changes(worktree):
        return False
    task = f" for task {prompt.task_id}" if prompt.task_id else ""
    git(worktree, "commit", "-q", "-m", f"fix: resolve merge conflicts{task}")
    return True


def run_resolve(prompt: ResolvePrompt) -> int:
    delay = _delay()
    worktree = _existing_worktree(prompt.worktree)
    total = len(prompt.paths) + 1
    say(f"demo agent: resolving {len(prompt.paths)} conflicting path(s) in {worktree}")
    for step, path in enumerate(prompt.paths, 1):
        _resolve_path(worktree, path)
        say(f"PROGRESS: {step}/{total} resolved {path}")
        time.sleep(delay)
    if not _commit_resolution(prompt):
        say("nothing left to commit")
        return 0
    say(f"committed the resolution {_short_head(worktree)}")
    say(f"PROGRESS: {total}/{total} committed")
    return 0


def _read_prompt(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"cannot read prompt file {source}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m tuiorch.demo_agent PROMPT_FILE", file=sys.stderr)
        return 2
    try:
        prompt = parse_prompt(_read_prompt(args[0]), Path.cwd())
        return run_resolve(prompt) if isinstance(prompt, ResolvePrompt) else run_task(prompt)
    except DemoError as exc:
        print(f"demo agent: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
