"""The errors the git package raises, worded for the user."""

from __future__ import annotations

from pathlib import Path


class GitError(Exception):
    """A git problem, worded for the user."""


class UncommittedWork(GitError):
    """An agent's work that tuiorch could not commit; it stays in its worktree, which must be kept."""

    def __init__(self, message: str, worktree: Path) -> None:
        super().__init__(message)
        self.worktree = worktree
