"""The git lock files a killed tuiorch can leave behind, and their removal when its run resumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def clear_stale_git_locks(
    git_dir: Path, base: str, *, was_merging: bool, task_branches: Sequence[str] = ()
) -> list[Path]:
    """Remove the lock files a killed tuiorch could have held; return what was removed.

    Called only when the saved run did not finish and we hold the run lock, so no tuiorch and none of
    its agents (killed first) is alive. Locks in tuiorch's own worktrees are therefore stale. main's index
    and ref locks are taken as ours only if the dead run was in the middle of a merge; otherwise they may
    be a live git command of the user's and are left alone.
    """
    candidates = _candidates(Path(git_dir), base, was_merging, task_branches)
    removed = []
    for lock in candidates:
        if lock.is_file():
            lock.unlink(missing_ok=True)
            removed.append(lock)
    return removed


def _candidates(git_dir: Path, base: str, was_merging: bool, task_branches: Sequence[str]) -> list[Path]:
    """The lock files a killed run could have held, present or not."""
    admins = _worktree_admins(git_dir)
    merge_locks = [git_dir / "index.lock", git_dir / "refs" / "heads" / f"{base}.lock"] if was_merging else []
    return [
        *_locks_in(admins),
        *merge_locks,
        *_branch_locks(git_dir, task_branches),
        # Copies of an index a merge was updating (see IndexUpdate in checkout.py): only tuiorch makes them.
        *git_dir.glob("index.tuiorch-*"),
        *_index_copies_in(admins),
    ]


def _worktree_admins(git_dir: Path) -> list[Path]:
    """The folder of each linked worktree in the common git dir."""
    worktrees = git_dir / "worktrees"
    return list(worktrees.iterdir()) if worktrees.is_dir() else []


def _locks_in(admins: list[Path]) -> list[Path]:
    """Each linked worktree's index and HEAD locks (tuiorch's worktrees: none of the user's is alive)."""
    return [admin / name for admin in admins for name in ("index.lock", "HEAD.lock")]


def _branch_locks(git_dir: Path, task_branches: Sequence[str]) -> list[Path]:
    """Task branches are tuiorch's own: a lock on one is a commit the dead run (or its agent) never finished."""
    return [git_dir / "refs" / "heads" / f"{branch}.lock" for branch in task_branches if branch]


def _index_copies_in(admins: list[Path]) -> list[Path]:
    return [leftover for admin in admins for leftover in admin.glob("index.tuiorch-*")]
