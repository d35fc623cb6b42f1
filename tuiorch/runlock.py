"""One orchestrator per repository, and the git locks a killed one leaves behind.

The run lock is an flock on `.git/tuiorch/run.lock`: the kernel drops it when the process dies,
however it dies, so a lock that can be taken means no tuiorch is running on this repository.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

from tuiorch.procs import kill_orphan_agents

__all__ = ["RunLock", "RunLockError", "clear_stale_git_locks", "kill_orphan_agents"]


class RunLockError(Exception):
    """Another tuiorch is running on this repository."""


class RunLock:
    def __init__(self, git_dir: Path) -> None:
        self.path = Path(git_dir) / "tuiorch" / "run.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockError(
                f"another tuiorch (pid {holder}) is running on this repository; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> str | None:
        """The pid of the tuiorch running on this repository, or None; creates nothing."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None  # a running tuiorch always has the file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 64).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)  # closing drops a lock we just took
        return None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def clear_stale_git_locks(
    git_dir: Path, base: str, *, was_merging: bool, task_branches: Sequence[str] = ()
) -> list[Path]:
    """Remove the lock files a killed tuiorch could have held; return what was removed.

    Called only when the saved run did not finish and we hold the run lock, so no tuiorch and none of
    its agents (killed first) is alive. Locks in tuiorch's own worktrees are therefore stale. main's index
    and ref locks are taken as ours only if the dead run was in the middle of a merge; otherwise they may
    be a live git command of the user's and are left alone.
    """
    git_dir = Path(git_dir)
    candidates: list[Path] = []
    worktrees = git_dir / "worktrees"
    if worktrees.is_dir():
        candidates += [admin / name for admin in worktrees.iterdir() for name in ("index.lock", "HEAD.lock")]
    if was_merging:
        candidates += [git_dir / "index.lock", git_dir / "refs" / "heads" / f"{base}.lock"]
    # Task branches are tuiorch's own: a lock on one is a commit the dead run (or its agent) never finished.
    candidates += [git_dir / "refs" / "heads" / f"{branch}.lock" for branch in task_branches if branch]
    # Copies of an index a merge was updating (see checkout.IndexUpdate): only tuiorch makes them.
    candidates += list(git_dir.glob("index.tuiorch-*"))
    if worktrees.is_dir():
        candidates += [leftover for admin in worktrees.iterdir() for leftover in admin.glob("index.tuiorch-*")]
    removed = []
    for lock in candidates:
        if lock.is_file():
            lock.unlink(missing_ok=True)
            removed.append(lock)
    return removed
