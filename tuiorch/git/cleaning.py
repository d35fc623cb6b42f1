"""What a reused worktree keeps and what it loses: keep paths, an agent CLI's scratch files, and the
untracked and ignored files removed between two tasks."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pygit2


def is_scratch(path: str, patterns: Sequence[str]) -> bool:
    """True if a component of `path` matches one of `patterns` (an agent CLI's own files)."""
    return any(fnmatch.fnmatchcase(part, pattern) for part in path.split("/") for pattern in patterns)


def normalize_keep(keep: Sequence[str]) -> set[str]:
    """The configured keep paths as worktree-relative paths; .git and paths leaving the tree dropped."""
    cleaned = set()
    for raw in keep:
        rel = raw.strip().strip("/")
        while rel.startswith("./"):
            rel = rel[2:]
        if rel and rel != ".git" and ".." not in Path(rel).parts:
            cleaned.add(rel)
    return cleaned


def exclude_pattern(rel: str) -> str:
    """An anchored info/exclude line matching exactly the directory `rel`."""
    escaped = "".join("\\" + ch if ch in "*?[]\\!#" else ch for ch in rel)
    return f"/{escaped}/"


def drop_inherited_sparse_checkout(path: Path) -> None:
    """Remove the sparse patterns `git worktree add` copied from the user's checkout: tasks see every file."""
    admin_file = path / ".git"
    with contextlib.suppress(OSError):
        admin = Path(admin_file.read_text().strip().removeprefix("gitdir:").strip())
        (admin / "info" / "sparse-checkout").unlink(missing_ok=True)


def _walk_untracked(
    root: Path, rel: str, tracked: set[str], tracked_dirs: set[str], keep: set[str]
) -> Iterator[Path]:
    """Paths under `root/rel` that are neither tracked nor kept; whole directories when possible."""
    directory = root / rel if rel else root
    for entry in os.scandir(directory):
        child = f"{rel}/{entry.name}" if rel else entry.name
        if child == ".git" or child in keep or child in tracked:
            continue
        if not entry.is_dir(follow_symlinks=False):
            yield root / child
        elif child in tracked_dirs or any(k.startswith(child + "/") for k in keep):
            yield from _walk_untracked(root, child, tracked, tracked_dirs, keep)
        else:
            yield root / child


def clean_untracked(root: Path, index: pygit2.Index, keep: set[str]) -> None:
    """Delete untracked and ignored files in a worktree, sparing `keep` paths and .git."""
    index.read()
    tracked = {entry.path for entry in index}
    tracked_dirs = {str(Path(p).parent.as_posix()) for p in tracked}
    for path in list(tracked_dirs):
        parts = path.split("/")
        tracked_dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for victim in list(_walk_untracked(root, "", tracked, tracked_dirs, keep)):
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim)
        else:
            victim.unlink(missing_ok=True)
