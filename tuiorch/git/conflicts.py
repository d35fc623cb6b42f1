"""Conflict triage in a task's worktree: both sides of a path, a manual merge of base into the task
branch, taking a side, marking a path resolved, and committing the resolved merge.

"ours" is always base's side and "theirs" the task's, as the triage modal shows them.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pygit2
from pygit2.enums import FileMode, FileStatus, RepositoryState

from tuiorch.git.errors import GitError
from tuiorch.git.identity import Identity
from tuiorch.git.proc import output, with_task_worktree_config
from tuiorch.git.repo import Repo, locked
from tuiorch.git.trees import (
    BINARY_PLACEHOLDER,
    blob_text,
    conflict_kind_in,
    conflicts_of,
    has_markers,
    tree_entry,
)

Side = Literal["ours", "theirs"]
#: (path, kind, base's text, the task's text, the merge base's text, binary)
ConflictFile = tuple[str, str, str | None, str | None, str | None, bool]
#: Which of a conflict's (ancestor, HEAD, merged-in) stages a side takes. In a task worktree HEAD is the
#: task and the merged-in side is base; tuiorch's names are from base's point of view, so they swap.
_STAGE_OF_SIDE: dict[str, int] = {"ours": 2, "theirs": 1}


def files_with_markers(worktree: Path, paths: Sequence[str]) -> list[str]:
    """Those of `paths` whose file in `worktree` still holds a conflict marker line."""
    marked = []
    for path in paths:
        with contextlib.suppress(OSError):
            if _file_has_markers(Path(worktree) / path):
                marked.append(path)
    return marked


class Conflicts:
    """Conflict triage; each public method takes the repository lock."""

    def __init__(self, repo: Repo, identity: Identity) -> None:
        self.repo = repo
        self.identity = identity

    def _sides(self, branch: str, base: str) -> tuple[pygit2.Commit, pygit2.Commit, pygit2.Tree | None]:
        """(base's tip, the branch's tip, their merge base's tree or None)."""
        ours, theirs = self.repo.commit_of(base), self.repo.commit_of(branch)
        try:
            ancestor_id = self.repo.handle.merge_base(ours.id, theirs.id)
        except pygit2.GitError:
            ancestor_id = None
        return ours, theirs, self.repo.handle[ancestor_id].peel(pygit2.Tree) if ancestor_id else None

    @locked
    def sides(self, branch: str, base: str, path: str) -> tuple[str | None, str | None, str | None]:
        """(base's text, the task's text, the common ancestor's text) of `path`; None where absent.

        Binary files come back as a placeholder string naming their size.
        """
        ours, theirs, ancestor = self._sides(branch, base)
        sides = [
            blob_text(self.repo.handle, entry.id) if isinstance(entry, pygit2.Blob) else None
            for entry in _entries((ours.tree, theirs.tree, ancestor), path)
        ]
        return sides[0], sides[1], sides[2]

    @locked
    def texts(self, branch: str, base: str, paths: Sequence[str]) -> tuple[str, str, list[ConflictFile]]:
        """The tips of `base` and `branch` and, per path, (path, kind, base's text, the task's text, the
        merge base's text, binary): what the conflict modal splits into hunks. None where a side has no file;
        binary (or non-UTF-8) files come back as a placeholder naming their size."""
        ours, theirs, ancestor = self._sides(branch, base)
        files = []
        for path in paths:
            read = [_text_of(entry) for entry in _entries((ours.tree, theirs.tree, ancestor), path)]
            texts = [text for text, _binary in read]
            binary = any(is_binary for _text, is_binary in read)
            kind = conflict_kind_in(path, texts[2], texts[0], texts[1], ours.tree, theirs.tree)
            files.append((path, kind, texts[0], texts[1], texts[2], binary))
        return str(ours.id), str(theirs.id), files

    @locked
    def start_manual_merge(
        self, worktree: Path, base: str = "main", message: str | None = None, commit: str | None = None
    ) -> tuple[str, ...]:
        """Merge `base` (or exactly `commit`, a tip of it) into the task branch checked out in `worktree`,
        leaving conflict markers.

        Returns the conflicted paths. The worktree is left mid-merge (MERGE_HEAD) for a human or
        an agent to edit; finish with finish_manual_merge. `message` replaces the prepared merge message
        (libgit2's "Merge branch ..." with "#Conflicts:" lines), which `git commit --no-edit` would keep.
        """
        wt_repo = _task_checkout(worktree)
        if wt_repo.state() == RepositoryState.MERGE:
            return conflicts_of(wt_repo)
        if wt_repo.status():
            raise GitError(f"{worktree} has uncommitted changes; commit them before merging {base} in")
        wt_repo.merge(pygit2.Oid(hex=commit) if commit else wt_repo.references[f"refs/heads/{base}"])
        conflicted = conflicts_of(wt_repo)
        _relabel_markers(Path(worktree), conflicted, wt_repo.head.shorthand)
        if message is not None and wt_repo.listall_mergeheads():
            Path(wt_repo.path, "MERGE_MSG").write_text(message.rstrip("\n") + "\n", encoding="utf-8")
        return conflicted

    @locked
    def merge_head(self, worktree: Path) -> str | None:
        """The commit being merged in `worktree` (MERGE_HEAD), or None when no merge is under way."""
        heads = pygit2.Repository(str(worktree)).listall_mergeheads()
        return str(heads[0]) if heads else None

    @locked
    def committed_markers(self, branch: str, paths: Sequence[str]) -> list[str]:
        """Those of `paths` whose committed file on `branch` holds a conflict marker line."""
        tree = self.repo.commit_of(branch).tree
        marked = []
        for path in paths:
            entry = tree_entry(tree, path)
            if isinstance(entry, pygit2.Blob) and has_markers(entry.data):
                marked.append(path)
        return marked

    @locked
    def conflicted_paths(self, worktree: Path) -> tuple[str, ...]:
        return conflicts_of(pygit2.Repository(str(worktree)))

    @locked
    def take_side(self, worktree: Path, path: str, side: Side) -> None:
        """Resolve `path` in `worktree` with base's version ("ours") or the task's ("theirs")."""
        stage = _STAGE_OF_SIDE.get(side)
        if stage is None:
            raise GitError(f"unknown side {side!r}: expected 'ours' (main) or 'theirs' (task)")
        wt_repo = pygit2.Repository(str(worktree))
        index = wt_repo.index
        index.read()
        conflicts = index.conflicts
        if conflicts is None or path not in conflicts:
            raise GitError(f"{path} is not in conflict in {worktree}")
        chosen = conflicts[path][stage]
        del conflicts[path]
        _check_out_entry(wt_repo, index, Path(worktree), path, chosen)
        index.write()

    @locked
    def write_resolved(self, worktree: Path, path: str, text: str) -> None:
        """Resolve `path` in `worktree` with `text` (the hunk-by-hunk result), keeping the file's mode."""
        target = Path(worktree) / path
        mode = target.stat().st_mode & 0o777 if target.is_file() else 0o644
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        target.chmod(mode)
        index = pygit2.Repository(str(worktree)).index
        index.read()
        _resolve_in_index(index, path)
        index.write()

    @locked
    def mark_resolved(self, worktree: Path, path: str) -> None:
        """Accept the file as edited by hand (or deleted); refuses while it still has markers."""
        index = pygit2.Repository(str(worktree)).index
        index.read()
        target = Path(worktree) / path
        if _file_has_markers(target):
            raise GitError(f"{path} still has conflict markers")
        if target.exists():
            _resolve_in_index(index, path)
        else:
            _unstage(index, path)
        index.write()

    @locked
    def finish_manual_merge(self, worktree: Path, message: str) -> str:
        """Commit the resolved merge on the task branch as (task tip, base tip); returns its sha."""
        wt_repo = pygit2.Repository(str(worktree))
        if wt_repo.state() != RepositoryState.MERGE:
            raise GitError(f"no merge in progress in {worktree}")
        unresolved = conflicts_of(wt_repo)
        if unresolved:
            raise GitError(f"still in conflict: {', '.join(unresolved)}; take a side or edit them")
        index = wt_repo.index
        index.read()
        # Edits made without staging them (an agent, an editor) belong to the resolution.
        _stage(index, wt_repo.status(untracked_files="all"))
        merge_heads = wt_repo.listall_mergeheads()
        if len(merge_heads) != 1:
            raise GitError(f"{worktree} is merging {len(merge_heads)} commits; expected one")
        with_markers = _marked_merge_results(
            Path(worktree), index, wt_repo.head.peel(pygit2.Commit), wt_repo[merge_heads[0]].peel(pygit2.Commit)
        )
        if with_markers:
            raise GitError(f"conflict markers remain in {', '.join(sorted(with_markers))}")
        index.write()
        self._commit_merge(Path(worktree), message)
        return str(pygit2.Repository(str(worktree)).head.target)

    def _commit_merge(self, worktree: Path, message: str) -> None:
        """git commits the merge (HEAD + MERGE_HEAD) so hooks, identity and signing apply."""
        done = self.repo.git(
            ["commit", "--quiet", "--no-edit", "-F", "-"],
            cwd=worktree,
            env=with_task_worktree_config(self.identity.env()),
            input=message.encode(),
        )
        if done.returncode != 0:
            raise GitError(f"git commit refused the resolved merge in {worktree}: {output(done)}")


def _text_of(entry: pygit2.Object | None) -> tuple[str | None, bool]:
    """(a blob's text, False), (a placeholder naming its size, True) for binary or non-UTF-8 data,
    (None, False) for no file."""
    if not isinstance(entry, pygit2.Blob):
        return None, False
    try:
        text = entry.data.decode("utf-8") if not entry.is_binary else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        return BINARY_PLACEHOLDER.format(size=entry.size), True
    return text, False


def _marked_merge_results(worktree: Path, index: pygit2.Index, head: pygit2.Commit, merged_in: pygit2.Commit) -> list[str]:
    """Files of the merge result that match neither parent and still hold conflict markers."""
    return [
        entry.path
        for entry in index
        if _differs_from_both(entry, head.tree, merged_in.tree) and _file_has_markers(worktree / entry.path)
    ]


#: Worktree changes `_stage` adds from disk (deletions are removed instead).
_ADDED_FROM_DISK = FileStatus.WT_NEW | FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE | FileStatus.WT_RENAMED


def _stage(index: pygit2.Index, changes: dict[str, int]) -> None:
    """Stage `status()` results: deletions removed, everything else added from disk."""
    for rel, flags in changes.items():
        if flags & FileStatus.IGNORED:
            continue
        if flags & FileStatus.WT_DELETED:
            _unstage(index, rel)
        elif flags & _ADDED_FROM_DISK:
            index.add(rel)


def _drop_conflict(index: pygit2.Index, path: str) -> None:
    """Forget `path`'s conflict stages, if it has any."""
    conflicts = index.conflicts
    if conflicts is not None and path in conflicts:
        del conflicts[path]


def _resolve_in_index(index: pygit2.Index, path: str) -> None:
    """Stage the file on disk at `path` as its resolution."""
    _drop_conflict(index, path)
    index.add(path)


def _unstage(index: pygit2.Index, path: str) -> None:
    """Resolve `path` as deleted: no conflict stages, no entry."""
    _drop_conflict(index, path)
    if path in index:
        index.remove(path)


def _file_has_markers(target: Path) -> bool:
    """True if `target` is a file holding a conflict marker line."""
    return target.is_file() and has_markers(target.read_bytes())


def _entries(trees: Sequence[pygit2.Tree | None], path: str) -> list[pygit2.Object | None]:
    """`path`'s entry in each of `trees` (None where the tree or the path is absent)."""
    return [tree_entry(tree, path) if tree is not None else None for tree in trees]


def _task_checkout(worktree: Path) -> pygit2.Repository:
    """The repository of `worktree`, which must have a task branch checked out."""
    wt_repo = pygit2.Repository(str(worktree))
    if wt_repo.head_is_detached:
        raise GitError(f"{worktree} has no task branch checked out")
    return wt_repo


def _differs_from_both(entry: pygit2.IndexEntry, first: pygit2.Tree, second: pygit2.Tree) -> bool:
    """True for a file whose merged content matches neither parent (merged or hand-edited)."""
    return not any(_same_entry(tree_entry(tree, entry.path), entry) for tree in (first, second))


def _same_entry(existing: pygit2.Object | None, entry: pygit2.IndexEntry) -> bool:
    return existing is not None and existing.id == entry.id


def _check_out_entry(
    wt_repo: pygit2.Repository, index: pygit2.Index, worktree: Path, path: str, chosen: pygit2.IndexEntry | None
) -> None:
    """Write `chosen` (a conflict stage) to `path` on disk and in the index; None deletes the file."""
    target = worktree / path
    if chosen is None:
        target.unlink(missing_ok=True)
        return
    blob = wt_repo[chosen.id]
    assert isinstance(blob, pygit2.Blob)
    _write_blob(target, blob.data, chosen.mode)
    index.add(pygit2.IndexEntry(path, chosen.id, chosen.mode))


def _write_blob(target: Path, data: bytes, mode: int) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == FileMode.LINK:
        target.unlink(missing_ok=True)
        target.symlink_to(data.decode())
        return
    target.unlink(missing_ok=True)
    target.write_bytes(data)
    target.chmod(0o755 if mode == FileMode.BLOB_EXECUTABLE else 0o644)


def _relabel_markers(worktree: Path, paths: Sequence[str], task_branch: str) -> None:
    """libgit2 labels the task's side 'HEAD'; name the branch so readers know whose side it is."""
    label = f"<<<<<<< {task_branch}\n".encode()
    for rel in paths:
        _replace_in_file(worktree / rel, b"<<<<<<< HEAD\n", label)


def _replace_in_file(target: Path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` in the file at `target`; nothing when it cannot be read."""
    try:
        data = target.read_bytes()
    except OSError:
        return
    replaced = data.replace(old, new)
    if replaced != data:
        target.write_bytes(replaced)

