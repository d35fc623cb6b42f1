"""One orchestrator per repository, and the git locks a killed one leaves behind.

The run lock is an flock on `.git/tuiorch/run.lock`: the kernel drops it when the process dies,
however it dies, so a lock that can be taken means no tuiorch is running on this repository.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

#: A git lock file this old, found when the previous run died, is that run's and not a live git's.
STALE_LOCK_SECONDS = 5.0


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

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def clear_stale_git_locks(git_dir: Path, base: str, now: float | None = None) -> list[Path]:
    """Remove the lock files a killed tuiorch could have held; return what was removed.

    Only called when the saved run did not finish and no tuiorch holds the run lock. A lock younger
    than STALE_LOCK_SECONDS may be a live git command of the user's, and is left alone.
    """
    now = time.time() if now is None else now
    git_dir = Path(git_dir)
    candidates = [git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "refs" / "heads" / f"{base}.lock"]
    worktrees = git_dir / "worktrees"
    if worktrees.is_dir():
        for admin in worktrees.iterdir():
            candidates += [admin / "index.lock", admin / "HEAD.lock"]
    removed = []
    for lock in candidates:
        try:
            age = now - lock.stat().st_mtime
        except OSError:
            continue
        if age >= STALE_LOCK_SECONDS:
            lock.unlink(missing_ok=True)
            removed.append(lock)
    return removed
