"""Reading trees, blobs and indexes: paths as git stores them, conflict markers and conflict kinds."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

_MARKER_PREFIXES = (b"<<<<<<< ", b">>>>>>> ")
_MARKER_SEPARATOR = b"======="
BINARY_PLACEHOLDER = "[binary file, {size} bytes]"


def has_markers(data: bytes) -> bool:
    """True if `data` holds a conflict marker line."""
    for line in data.splitlines():
        if line.startswith(_MARKER_PREFIXES) or line.rstrip() == _MARKER_SEPARATOR:
            return True
    return False


def git_path(path: str) -> bytes:
    """A path as git stores it: pygit2 hands non-UTF-8 names over with surrogate escapes, and
    takes them back only as bytes."""
    return path.encode("utf-8", "surrogateescape")


def leading_dirs(path: str) -> set[str]:
    """The directories on the way to `path` ("a", "a/b" for "a/b/c")."""
    return {"/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)}


def tree_entry(tree: pygit2.Tree, path: str) -> pygit2.Object | None:
    try:
        return tree[path]
    except KeyError:
        return None
    except UnicodeEncodeError:
        return _tree_entry_bytes(tree, git_path(path))


def _tree_entry_bytes(tree: pygit2.Tree, path: bytes) -> pygit2.Object | None:
    """Walk to a path component by component, comparing raw names (a non-UTF-8 name on the way)."""
    node: pygit2.Object | None = tree
    for part in path.split(b"/"):
        node = _child_named(node, part)
        if node is None:
            return None
    return node


def _child_named(node: pygit2.Object | None, name: bytes) -> pygit2.Object | None:
    """The entry of tree `node` whose raw name is `name`; None when there is none or `node` is no tree."""
    if not isinstance(node, pygit2.Tree):
        return None
    return next((child for child in node if git_path(child.name or "") == name), None)


def blob_text(repo: pygit2.Repository, blob_id: pygit2.Oid) -> str:
    blob = repo[blob_id]
    assert isinstance(blob, pygit2.Blob)
    if blob.is_binary:
        return BINARY_PLACEHOLDER.format(size=blob.size)
    return blob.data.decode("utf-8", errors="replace")


def file_matches(target: Path, entry: pygit2.Object | None) -> bool:
    """True if the file at `target` is exactly tree entry `entry` (absent when entry is None)."""
    if entry is None:
        return not target.exists() and not target.is_symlink()
    if not isinstance(entry, pygit2.Blob):
        return False
    matches = _symlink_is if entry.filemode == FileMode.LINK else _regular_file_is
    return matches(target, entry)


def _symlink_is(target: Path, blob: pygit2.Blob) -> bool:
    return target.is_symlink() and os.readlink(target).encode() == blob.data


def _regular_file_is(target: Path, blob: pygit2.Blob) -> bool:
    return target.is_file() and not target.is_symlink() and pygit2.hashfile(str(target)) == blob.id


def changed_paths(old: pygit2.Tree, new: pygit2.Tree) -> set[str]:
    diff = old.diff_to_tree(new)
    changed: set[str] = set()
    for delta in diff.deltas:
        changed.add(delta.old_file.path)
        changed.add(delta.new_file.path)
    return changed


def entry_path(entries: tuple[pygit2.IndexEntry | None, ...]) -> str:
    """The path of a conflict's (ancestor, ours, theirs) entries, from the first present one."""
    return next(e.path for e in entries if e is not None)


def conflicts_of(wt_repo: pygit2.Repository) -> tuple[str, ...]:
    """The paths in conflict in a worktree's index, read from disk."""
    index = wt_repo.index
    index.read()
    if index.conflicts is None:
        return ()
    return tuple(sorted(entry_path(entries) for entries in index.conflicts))


def conflict_kind(ancestor: object, ours: object, theirs: object) -> str:
    """Name a conflict the way the triage modal shows it (ours = base, theirs = task)."""
    if ours is None:
        return "modify/delete"  # base deleted what the task modified
    if theirs is None:
        return "delete/modify"  # the task deleted what base modified
    if ancestor is None:
        return "add/add"
    return "content"


def conflict_kind_in(
    path: str, ancestor: object, ours: object, theirs: object, base_tree: pygit2.Tree, task_tree: pygit2.Tree
) -> str:
    """conflict_kind, told apart from a deletion where one side has a directory at `path` (as git says)."""
    if (ours is None and isinstance(tree_entry(base_tree, path), pygit2.Tree)) or (
        theirs is None and isinstance(tree_entry(task_tree, path), pygit2.Tree)
    ):
        return "file/directory"
    return conflict_kind(ancestor, ours, theirs)
