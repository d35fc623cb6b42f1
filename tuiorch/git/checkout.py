"""Bring a user's checkout of the base branch along when a merge lands, the way git itself would.

The files and index of a working tree where base is checked out are updated by `git read-tree -m -u`
(git's two-way merge from base's old tip to the merge commit), run in that working tree with its own
config: sparse-checkout patterns, filters (Git LFS, eol conversion, `ident`), file modes, symlinks,
split and sparse indexes and `core.*` settings are all git's business, so the result is what
`git merge` would have left. Only the paths the merge changes are touched; a dirty or untracked file
in one of them makes git refuse before writing anything, and nothing of the user's is overwritten.

git's index lock is held from before HEAD is read until after the ref has moved, so a `git switch`,
`git commit` or `git reset` of the user's cannot slip in between; git's own command works on a copy
of the index (GIT_INDEX_FILE), installed just before base moves and put back if it cannot.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tuiorch.git.heads import Checkout, head_ref
from tuiorch.git.proc import git_env
from tuiorch.git.trees import leading_dirs

_LOCK_POLL = 0.005
#: How long after another command wrote an index its HEAD update may still be on the way.
_SETTLE = 0.05
#: The identity (inode, mtime, size) of the index each checkout got from us last.
_installed: dict[Path, tuple[int, int, int]] = {}

#: What git's plumbing says when a two-way merge would overwrite something (LC_ALL=C, untranslated).
_REFUSALS = (
    re.compile(r"^error: Entry '(.*)' not uptodate\. Cannot merge\.$"),
    re.compile(r"^error: Entry '(.*)' would be overwritten by merge\. Cannot merge\.$"),
    re.compile(r"^error: Updating '(.*)' would lose untracked files in it$"),
    re.compile(r"^error: Untracked working tree file '(.*)' would be (?:overwritten|removed) by merge\.$"),
    re.compile(r"^error: Path '(.*)' not uptodate; will not remove from working tree\.$"),
)


class Refused(Exception):
    """git would not update the checkout: the user has changes in `paths` (or another reason)."""

    def __init__(self, message: str, paths: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.paths = paths


class Busy(Exception):
    """Another git process holds the checkout's index (or is switching its HEAD); try again shortly."""


def _run(checkout: Checkout, args: list[str], *, index: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    extra = {"GIT_INDEX_FILE": str(index)} if index is not None else {}
    return subprocess.run(
        ["git", *args],
        cwd=checkout.workdir,
        env=git_env(**extra),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
    )


def _refused_paths(stderr: str) -> list[str]:
    found = []
    for line in stderr.splitlines():
        for pattern in _REFUSALS:
            match = pattern.match(line.strip())
            if match:
                found.append(match.group(1))
                break
    return found


def hidden_from_status(checkout: Checkout, paths: Iterable[str]) -> dict[str, str]:
    """Which of `paths` the index marks skip-worktree or assume-unchanged: a change there is one that
    `git status` does not show (git merge still refuses to overwrite it)."""
    done = _run(checkout, ["--literal-pathspecs", "ls-files", "-v", "-z", "--", *paths])
    hidden = {}
    for record in done.stdout.decode(errors="surrogateescape").split("\0"):
        tag, _, path = record.partition(" ")
        if tag == "S":
            hidden[path] = "skip-worktree"
        elif tag.islower():
            hidden[path] = "assume-unchanged"
    return hidden


def paths_collide(dirty: str, changed: str) -> bool:
    """Same file, or one is a directory holding the other (a file in the way of a directory)."""
    return dirty == changed or changed.startswith(dirty.rstrip("/") + "/") or dirty.startswith(changed + "/")


class IndexUpdate:
    """One checkout's update, from taking git's index lock to committing or rolling back.

    lock() -> apply() -> stage() -> [the ref moves] -> commit(); rollback() at any point after lock()
    puts the files and the index back as they were.
    """

    def __init__(self, checkout: Checkout) -> None:
        self.checkout = checkout
        self.lock_path = checkout.gitdir / "index.lock"
        self.index_path = checkout.gitdir / "index"
        self.scratch = checkout.gitdir / f"index.tuiorch-{os.getpid()}"
        self.backup = checkout.gitdir / f"index.tuiorch-{os.getpid()}-before"
        self._had_index = False
        self._locked = False
        self._applied: tuple[str, str] | None = None
        self._staged = False
        #: The scratch index's stat data may be stale (not refreshed since it was copied).
        self._stale_stat = False

    def lock(self, timeout: float = 0.0) -> None:
        """Take git's index lock, waiting up to `timeout` seconds for another git command to let go."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                if time.monotonic() >= deadline:
                    raise Busy(str(self.lock_path)) from None
                time.sleep(_LOCK_POLL)
        os.close(fd)
        self._locked = True
        self._let_a_switch_finish()
        if (self.checkout.gitdir / "HEAD.lock").exists():
            self.release()  # a git command is moving HEAD right now
            raise Busy(str(self.checkout.gitdir / "HEAD.lock"))

    def _let_a_switch_finish(self) -> None:
        """Wait, holding the lock, until an index written moments ago has had time to get its HEAD.

        `git switch` writes the new branch's index, releases the lock and only then points HEAD at
        the branch; an index younger than _SETTLE that we did not write may be such a switch's, whose
        HEAD is about to change. Once it has, the HEAD check that follows sees the truth.
        """
        try:
            st = os.stat(self.index_path)
        except OSError:
            return
        if _installed.get(self.index_path) == (st.st_ino, st.st_mtime_ns, st.st_size):
            return  # the index we installed ourselves
        age = time.time() - st.st_mtime
        if 0 <= age < _SETTLE:
            time.sleep(_SETTLE - age)

    def apply(
        self,
        old: str,
        new: str,
        changed: set[str],
        already: Callable[[list[str]], list[tuple[str, str, str]]],
    ) -> None:
        """Update files and the scratch index from commit `old` to `new` with git's two-way merge.

        `changed`: the paths that differ between old and new. When git refuses, the user's changes in
        those paths are named (Refused), except files already holding exactly the merge's version
        (what a crash between the update and the ref move leaves behind): `already` returns their
        index lines (mode, blob id, path) in `new`, they are staged in the scratch index and the
        update is tried once more.
        """
        self._prepare_scratch()
        for attempt in range(2):
            done = self._two_way_merge(old, new)
            if done.returncode == 0:
                self._applied = (old, new)
                return
            refused = self._refused_or_undo(done, old, new)
            hits = self.dirty_among(changed) or refused
            self._stage_already_merged(hits, already(hits) if attempt == 0 else [])
        raise Refused("uncommitted changes", tuple(sorted(self.dirty_among(changed))))

    def _prepare_scratch(self) -> None:
        """The scratch index starts as a copy of the checkout's."""
        self._stale_stat = self.index_path.exists()
        if self._stale_stat:
            shutil.copyfile(self.index_path, self.scratch)

    def _two_way_merge(self, old: str, new: str) -> subprocess.CompletedProcess[bytes]:
        """`git read-tree -m -u old new` on the scratch index; refused once, again with its stat data refreshed."""
        done = _run(self.checkout, ["read-tree", "-m", "-u", old, new], index=self.scratch)
        if done.returncode == 0 or not self._stale_stat or not _refused_paths(done.stderr.decode(errors="replace")):
            return done
        # As `git merge` does first: a file whose stat data alone changed (touched, saved unchanged,
        # chowned) is clean again, not "not uptodate". Exit 1 only lists files that really differ. Done
        # only once git refused (it then has written nothing): an index git keeps fresh needs none.
        self._stale_stat = False
        _run(self.checkout, ["update-index", "-q", "--refresh"], index=self.scratch)
        return _run(self.checkout, ["read-tree", "-m", "-u", old, new], index=self.scratch)

    def _refused_or_undo(self, done: subprocess.CompletedProcess[bytes], old: str, new: str) -> list[str]:
        """The paths a failed read-tree refused to overwrite; on any other failure, undo what it did and
        raise Refused with git's last word."""
        stderr = done.stderr.decode(errors="replace")
        refused = _refused_paths(stderr)
        if not refused:
            self._restore(old, new)
            raise Refused(stderr.strip().splitlines()[-1] if stderr.strip() else "git read-tree failed")
        return refused

    def _stage_already_merged(self, hits: list[str], matching: list[tuple[str, str, str]]) -> None:
        """Stage `matching` (index lines of files already at the merge's version) in the scratch index;
        Refused unless every one of `hits` is among them."""
        if len(matching) < len(hits):
            raise Refused("uncommitted changes", tuple(sorted(hits)))
        info = "".join(f"{mode} {sha}\t{path}\n" for mode, sha, path in matching).encode(errors="surrogateescape")
        staged = _run(self.checkout, ["update-index", "--index-info"], index=self.scratch, stdin=info)
        if staged.returncode != 0:
            raise Refused(staged.stderr.decode(errors="replace").strip() or "git update-index failed")

    def _dirty_paths(self) -> list[str]:
        """Every path `git status` shows (modified, staged, untracked), for naming what blocks."""
        done = _run(
            self.checkout,
            ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=none"],
        )
        paths = []
        for record in done.stdout.decode(errors="surrogateescape").split("\0"):
            if len(record) > 3:
                paths.append(record[3:])
        return paths

    def dirty_among(self, changed: Iterable[str]) -> list[str]:
        """The user's changed or untracked paths that collide with `changed` (see paths_collide)."""
        files = set(changed)
        directories = set().union(*map(leading_dirs, files))
        hits = set()
        for dirty in self._dirty_paths():
            bare = dirty.rstrip("/")
            if bare in files or bare in directories or leading_dirs(bare) & files:
                hits.add(dirty)
        return sorted(hits)

    def head_still(self, refname: str) -> bool:
        return head_ref(self.checkout.gitdir) == refname

    @property
    def staged(self) -> bool:
        return self._staged

    def stage(self) -> None:
        """Install the updated index while still holding git's lock (the old one is kept aside).

        Installed before the ref moves, so a crash in between leaves files and index ahead of base,
        which the next attempt recognises (read-tree keeps entries already at the merge's version),
        never an index behind its HEAD.
        """
        if self._applied is None:
            return  # only held, nothing to install
        self._had_index = self.index_path.exists()
        if self._had_index:
            shutil.copyfile(self.index_path, self.backup)
        os.replace(self.scratch, self.index_path)
        self._staged = True
        with contextlib.suppress(OSError):
            st = os.stat(self.index_path)
            _installed[self.index_path] = (st.st_ino, st.st_mtime_ns, st.st_size)

    def commit(self) -> None:
        """Keep the installed index and release git's lock."""
        self._staged = False
        self._applied = None
        self.release()

    def release(self) -> None:
        self.scratch.unlink(missing_ok=True)
        self.backup.unlink(missing_ok=True)
        if self._locked:
            self.lock_path.unlink(missing_ok=True)
            self._locked = False

    def rollback(self) -> None:
        """Put the index and the files back as they were and release the lock."""
        try:
            if self._staged:
                if self._had_index:
                    os.replace(self.backup, self.index_path)
                else:
                    self.index_path.unlink(missing_ok=True)
                _installed.pop(self.index_path, None)
                self._staged = False
            if self._applied is not None:
                self._restore(*self._applied)
                self._applied = None
        finally:
            self.release()

    def _restore(self, old: str, new: str) -> None:
        """Undo git's update of the paths changed between `old` and `new`, even one stopped half way.

        git touched exactly the paths whose index entry was old's version (rewritten or deleted) and
        the paths new adds that the index did not have (written); the real index still says what
        they were, so those are checked out from it again and the added files removed.
        """
        diff = _run(self.checkout, ["diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new])
        changed = _nul_separated(diff.stdout)
        if not changed:
            return
        staged = _entries(_run(self.checkout, ["ls-files", "-s", "-z"]).stdout, stage_field=True)
        in_old = _entries(_run(self.checkout, ["ls-tree", "-r", "-z", old]).stdout, stage_field=False)
        in_new = _entries(_run(self.checkout, ["ls-tree", "-r", "-z", new]).stdout, stage_field=False)
        added = [rel for rel in changed if rel not in staged and rel in in_new]
        _remove_files(self.checkout.workdir, added)
        self._check_out_from_index([rel for rel in changed if rel in staged and staged[rel] == in_old.get(rel)])

    def _check_out_from_index(self, paths: list[str]) -> None:
        if paths:
            _run(
                self.checkout,
                ["checkout-index", "-f", "-q", "-z", "--stdin"],
                stdin=b"\0".join(rel.encode(errors="surrogateescape") for rel in paths) + b"\0",
            )


def _remove_files(workdir: Path, paths: list[str]) -> None:
    """Delete the files at `paths` in `workdir`, and the directories that leaves empty."""
    for rel in sorted(paths, reverse=True):  # files before the directories holding them
        target = workdir / rel
        if not (target.is_file() or target.is_symlink()):
            continue
        target.unlink(missing_ok=True)
        _remove_empty_folders(workdir, target.parent)


def _remove_empty_folders(workdir: Path, folder: Path) -> None:
    """Remove `folder` and its parents below `workdir` for as long as they are empty."""
    while folder != workdir and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _nul_separated(listing: bytes) -> list[str]:
    """The non-empty paths of a -z listing."""
    return [path for path in listing.decode(errors="surrogateescape").split("\0") if path]


def _entries(listing: bytes, *, stage_field: bool) -> dict[str, tuple[str, str]]:
    """path -> (mode, object id) from `git ls-files -s -z` (stage_field) or `git ls-tree -r -z` output."""
    found: dict[str, tuple[str, str]] = {}
    for record in listing.decode(errors="surrogateescape").split("\0"):
        if "\t" not in record:
            continue
        meta, path = record.split("\t", 1)
        fields = meta.split()
        if stage_field:  # mode sha stage
            if fields[2] == "0":
                found[path] = (fields[0], fields[1])
        else:  # mode type sha
            found[path] = (fields[0], fields[2])
    return found
