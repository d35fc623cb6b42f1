"""The "main is always green" gate: run `[merge] check` on the exact merge result before main moves.

`run_check` runs the check command (an argv list, never a shell) in a scratch worktree through
`AgentProcess` (own process group, streamed to the task's log, group killed on timeout). The landing
step (tuiorch/steps/landing.py) runs it on the exact merge commit and lands only that commit.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuiorch.agent import AgentExit, AgentProcess, ProcessHooks
from tuiorch.git import worktree_head

#: Lines of check output kept for the task's pane and the check_failed event.
TAIL_LINES = 50


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    exit: int | None  # None when a signal or the timeout ended it
    output_tail: str  # the last TAIL_LINES lines, newline-joined
    timed_out: bool = False
    reason: str = ""  # one line for the user: "exit 1", "timed out after 5s", "command not found: x"


def _start_problem(argv0: str, cwd: Path) -> str | None:
    """Why the check could not start at all, worded for the user; None when it looks startable."""
    if not cwd.is_dir():
        return f"cannot start check: working directory does not exist: {cwd}"
    if "/" in argv0:
        program = Path(argv0) if os.path.isabs(argv0) else cwd / argv0
        if not program.is_file():
            return f"cannot start check: command not found: {argv0}"
        if not os.access(program, os.X_OK):
            return f"cannot start check: permission denied: {argv0}"
        return None
    if shutil.which(argv0) is None:
        return f"cannot start check: command not found: {argv0}"
    return None


def _head_of(worktree: Path) -> str:
    return worktree_head(worktree) or "(unknown commit)"


def _append(log_path: Path, line: str) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


async def run_check(
    argv: Sequence[str],
    worktree: Path,
    log_path: Path,
    timeout: float | None,
    *,
    commit: str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> CheckResult:
    """Run the check command in `worktree`, appending its output to `log_path` under a header line.

    `argv` is already split (shlex) by the caller and is never given to a shell. `commit` names the
    checked commit in the header (default: the worktree's HEAD). Passed means exit status 0 within
    `timeout` seconds (None or <= 0: no limit); on timeout the process group is killed.
    """
    if not argv:
        raise ValueError("check command is empty")
    argv = [str(arg) for arg in argv]
    worktree = Path(worktree)
    log_path = Path(log_path)
    sha = commit or await asyncio.to_thread(_head_of, worktree)
    _append(log_path, f"== check: {shlex.join(argv)} on {sha} ==")
    problem = _start_problem(argv[0], worktree)
    if problem is not None:
        _append(log_path, f"tuiorch: {problem}")
        _append(log_path, f"== check failed: {problem} ==")
        return CheckResult(False, 127, f"tuiorch: {problem}", reason=problem)

    hooks = ProcessHooks(on_lines=_each(on_line)) if on_line is not None else None
    process = AgentProcess(argv, worktree, log_path, env=env, tail_lines=TAIL_LINES, hooks=hooks, timeout=timeout)
    started = time.monotonic()
    ended = await process.run()
    took = time.monotonic() - started
    tail = list(process.tail)
    reason = _ended_reason(ended, timeout)
    passed = ended.ok
    if not passed and not ended.error:
        # Say why in the tail too: the pane and the event show the tail, not the log's footer.
        tail = [*tail[-(TAIL_LINES - 1) :], f"tuiorch: check {reason}"]
    _append(log_path, f"== check {'passed' if passed else 'failed: ' + reason} ({took:.1f}s) ==")
    return CheckResult(
        passed=passed,
        exit=ended.code,
        output_tail="\n".join(tail),
        timed_out=ended.timed_out,
        reason="" if passed else reason,
    )


def _ended_reason(ended: AgentExit, timeout: float | None) -> str:
    """How the check ended, in one line for the user."""
    if ended.error:
        return ended.error.replace("cannot start agent", "cannot start check")
    if ended.timed_out:
        return f"timed out after {timeout:g}s"
    if ended.cancelled:
        return "cancelled"
    if ended.signal:
        return f"killed by {ended.signal}"
    return f"exit {ended.code}"


def _each(on_line: Callable[[str], None]) -> Callable[[list[str]], None]:
    def on_lines(lines: list[str]) -> None:
        for line in lines:
            on_line(line)

    return on_lines
