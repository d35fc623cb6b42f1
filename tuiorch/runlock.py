"""One orchestrator per repository; the cleanup after a killed one lives in git.locks and procs.

The run lock is an flock on `.git/tuiorch/run.lock`: the kernel drops it when the process dies,
however it dies, so a lock that can be taken means no tuiorch is running on this repository.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tuiorch.git.locks import clear_stale_git_locks
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
