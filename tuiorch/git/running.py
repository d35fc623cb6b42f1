"""The git commands running in a working tree, found through /proc, and waiting for them to end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from tuiorch.procs import PROC, process_dirs

_POLL = 0.005


def git_processes_in(workdirs: Iterable[Path], exclude: Iterable[Path] = ()) -> set[int] | None:
    """Pids of git processes working in (or under) any of `workdirs` but not under `exclude` (other
    working trees nested inside, e.g. task worktrees); None where /proc is missing."""
    if not PROC.is_dir():
        return None
    roots = list(map(str, workdirs))
    skipped = [e for e in map(str, exclude) if e not in roots]
    found = {pid for pid, folder in process_dirs() if _git_within(folder, roots, skipped)}
    return found - {os.getpid()}


def _git_within(folder: str, roots: list[str], skipped: list[str]) -> bool:
    """True if the process at /proc/`folder` is a git working under `roots` but not under `skipped`."""
    # Where it works first (one readlink): most processes of the machine work elsewhere, and for them
    # what they are need not be read at all. This runs on every merge, over every process.
    try:
        cwd = os.readlink(f"{folder}/cwd")
    except OSError:
        return False
    return _under(cwd, roots) and not _under(cwd, skipped) and _is_git(folder)


def _is_git(folder: str) -> bool:
    """True if the process at `folder` (/proc/<pid>) is a git (plain strings and an unbuffered read)."""
    try:
        with open(f"{folder}/comm", "rb", buffering=0) as comm:
            return comm.read(64) == b"git\n"
    except OSError:
        return False


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def wait_for_exit(pids: set[int], timeout: float) -> None:
    """Return once none of `pids` runs any more, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = set(filter(_running, alive))
        if alive:
            time.sleep(_POLL)


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:4]
    except (OSError, IndexError):
        return True
