"""One attempt at landing a prepared merge: compare-and-swap of base's ref, with every checkout of
base brought along (git's way, see checkout.py) and nothing of the user's overwritten.

Order: take git's lock on refs/heads/<base> (so no other git can move it meanwhile) and check it
still is the tip the merge was prepared on; in each working tree where base is checked out, take
its index lock and update only the merge's paths (refused, "blocked", if the user's changes are in
the way); install those indexes; move the ref; release the locks. Any failure rolls every checkout
back and leaves the ref untouched.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import time
from pathlib import Path
from typing import TypeGuard

import pygit2
from pygit2.enums import FileMode

from tuiorch.git.checkout import Busy, IndexUpdate, Refused, hidden_from_status
from tuiorch.git.heads import Checkout, all_checkouts, find_checkouts, operation_in_progress
from tuiorch.git.outcomes import MergeOutcome, PreparedMerge
from tuiorch.git.proc import git_env
from tuiorch.git.repo import Repo
from tuiorch.git.running import git_processes_in, wait_for_exit
from tuiorch.git.trees import file_matches, tree_entry

#: How long a merge waits for a git command of the user's to release the index (like git's ref lock wait).
_INDEX_LOCK_WAIT = 0.2
#: How long the user's index stays locked after base moved (see _hold_for_switches): without /proc, and at most.
_SWITCH_GRACE = 0.05
_SWITCH_GRACE_MAX = 1.0


class _LockBusy(Exception):
    """Internal: another process holds base's ref lock."""


class _Refused(Exception):
    """Internal: the merge must not land now; carries the outcome to report."""

    def __init__(self, outcome: MergeOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _blocked(message: str, paths: tuple[str, ...] = ()) -> _Refused:
    return _Refused(MergeOutcome("blocked", None, paths, message=message))


def land_once(repo: Repo, prepared: PreparedMerge) -> MergeOutcome | None:
    """Lock base's ref, compare, update checked-out trees, move the ref. None: a lock was busy.

    The caller holds the repository lock.
    """
    updates: list[IndexUpdate] = []
    try:
        _move_ref(repo, prepared, updates)
    except (_LockBusy, Busy):
        _rollback(updates)
        return None
    except _Refused as refused:
        _rollback(updates)
        return refused.outcome
    except (pygit2.GitError, OSError) as exc:
        _rollback(updates)
        return _not_updated(prepared, updates, exc)
    _settle_checkouts(repo, updates, f"refs/heads/{prepared.base}")
    return MergeOutcome("merged", prepared.commit, message=f"merged {prepared.branch_tip} into {prepared.base}")


def _not_updated(prepared: PreparedMerge, updates: list[IndexUpdate], exc: Exception) -> MergeOutcome:
    """The blocked outcome for git or the file system failing on the way (the ref untouched)."""
    where = ", ".join(str(u.checkout.workdir) for u in updates) or f"refs/heads/{prepared.base}"
    return MergeOutcome(
        "blocked",
        None,
        tuple(sorted(prepared.paths)),
        message=f"could not update {prepared.base} in {where}: {exc} (tuiorch retries)",
    )


def _settle_checkouts(repo: Repo, updates: list[IndexUpdate], refname: str) -> None:
    """After base moved: keep each checkout's update and release its lock."""
    if updates:
        _hold_for_switches(repo, updates)
    for update in updates:
        if update.staged and not update.head_still(refname):
            # A `git switch` that wrote its index just before our lock moved HEAD only now: that
            # index is the other branch's, so it stays as it was and our files go back.
            update.rollback()
        else:
            update.commit()


def _rollback(updates: list[IndexUpdate]) -> None:
    for update in updates:
        update.rollback()


def _move_ref(repo: Repo, prepared: PreparedMerge, updates: list[IndexUpdate]) -> None:
    """Everything under base's ref lock; `updates` collects the checkouts touched, for rollback."""
    base, refname = prepared.base, f"refs/heads/{prepared.base}"
    # Leaving this block by an exception drops the transaction uncommitted (lock released, ref
    # untouched); leaving it normally commits the new target and then releases the lock.
    with repo.handle.transaction() as txn:
        try:
            txn.lock_ref(refname)
        except pygit2.GitError:
            raise _LockBusy from None
        current = str(repo.commit_of(base).id)
        if current != prepared.base_tip:
            raise _Refused(
                MergeOutcome(
                    "moved",
                    None,
                    message=(
                        f"{base} moved from {prepared.base_tip[:7]} to {current[:7]} "
                        "since the merge was prepared; recompute it"
                    ),
                )
            )
        _update_checkouts(repo, prepared, updates)
        for update in updates:
            update.stage()
        # Reflog signature None: pygit2 1.21 cannot pass a Signature here (TypeError).
        txn.set_target(refname, pygit2.Oid(hex=prepared.commit), None, f"tuiorch: merge {prepared.branch_tip} (--no-ff)")


def _primary_checkout(repo: Repo) -> Checkout | None:
    primary = repo.primary_workdir()
    return Checkout(primary, repo.git_dir) if primary is not None else None


def _update_checkouts(repo: Repo, prepared: PreparedMerge, updates: list[IndexUpdate]) -> None:
    """Update every checkout of base; hold the primary checkout's index when it is elsewhere."""
    refname = f"refs/heads/{prepared.base}"
    primary = _primary_checkout(repo)
    checkouts = find_checkouts(repo.git_dir, primary.workdir if primary else None, refname)
    for checkout in checkouts:
        update = IndexUpdate(checkout)
        updates.append(update)
        _update_checkout(repo, update, prepared, refname)
    if primary is not None and primary not in checkouts:
        # Not updated, only held: a `git switch` to base there cannot start from base's old tip.
        update = IndexUpdate(primary)
        with contextlib.suppress(Busy):
            update.lock()
            updates.append(update)


def _hold_for_switches(repo: Repo, updates: list[IndexUpdate]) -> None:
    """Keep the index locks until git commands already running in those trees have ended.

    git switch reads where the branches point before it takes the index lock: one that read base's
    old tip before the ref moved must meet the lock and stop, instead of carrying the merge's
    changes to the other branch or checking out the old tip. So the lock is held until every git
    command already running in those trees has ended (or a short while).
    """
    primary = repo.primary_workdir()
    others = [c.workdir for c in all_checkouts(repo.git_dir, primary)]
    running = git_processes_in((u.checkout.workdir for u in updates), exclude=others)
    if running is None:
        time.sleep(_SWITCH_GRACE)
    else:
        wait_for_exit(running, _SWITCH_GRACE_MAX)


def _update_checkout(repo: Repo, update: IndexUpdate, prepared: PreparedMerge, refname: str) -> None:
    """Take the checkout's index lock, check it still is on base and idle, and update it (git's way).

    Raises _Refused (the task waits, with the reason), Busy (another git holds the index or is
    moving HEAD: retried shortly) or leaves `update` applied and locked for stage/commit.
    """
    base, workdir = prepared.base, update.checkout.workdir
    _lock_index(update, base)
    # Read again under git's index lock: from here no git command can switch this tree's branch.
    _refuse_operation_in_progress(update.checkout, base)
    if not update.head_still(refname):
        raise Busy(f"{workdir} left {base}")  # switched away just now: look again
    new_tree = repo.handle[pygit2.Oid(hex=prepared.tree)].peel(pygit2.Tree)
    changed = set(prepared.paths)
    try:
        update.apply(prepared.base_tip, prepared.commit, changed, functools.partial(_already, workdir, new_tree))
    except Refused as refused:
        raise _refusal(repo, update, prepared, refused) from None
    # A `git switch` that wrote the index just before our lock moves HEAD only now: the files we
    # wrote went to its branch, so they are put back and the merge looks again.
    if not update.head_still(refname):
        raise Busy(f"{workdir} left {base}")


def _lock_index(update: IndexUpdate, base: str) -> None:
    """Take the checkout's index lock; blocked when another git process keeps it."""
    try:
        update.lock(timeout=_INDEX_LOCK_WAIT)
    except Busy:
        raise _blocked(
            f"{base} in {update.checkout.workdir} is busy (another git process holds its index); tuiorch "
            f"retries. If no git process is running, delete {update.checkout.gitdir / 'index.lock'}"
        ) from None


def _refuse_operation_in_progress(checkout: Checkout, base: str) -> None:
    """Blocked while the user's rebase, merge, cherry-pick ... owns the checkout's base."""
    operation = operation_in_progress(checkout.gitdir)
    if operation is not None:
        what, finish = operation
        raise _blocked(
            f"{base} in {checkout.workdir} is in the middle of a {what}; {base} stays where it is until "
            f"you finish it ({finish}); tuiorch retries"
        )


def _refusal(repo: Repo, update: IndexUpdate, prepared: PreparedMerge, refused: Refused) -> _Refused:
    """The blocked outcome for git's refusal to update a checkout, naming the user's paths in the way."""
    base, workdir = prepared.base, update.checkout.workdir
    if not refused.paths:
        return _blocked(
            f"could not update {base} in {workdir}: {refused} (tuiorch retries)", tuple(sorted(prepared.paths))
        )
    hits = refused.paths
    # Another working tree than the one the run started in: say which, its status is not this one's.
    where = "" if workdir == repo.root else f" in {workdir}"
    hidden = "".join(
        f"; {path} is marked {flag}, so git status does not show its change "
        f"(git update-index --no-{flag} {path} shows it)"
        for path, flag in hidden_from_status(update.checkout, hits).items()
    )
    return _blocked(
        f"{base}{where} has uncommitted changes in {', '.join(hits)}; commit or stash them (tuiorch retries){hidden}",
        hits,
    )


def _already(workdir: Path, new_tree: pygit2.Tree, paths: list[str]) -> list[tuple[str, str, str]]:
    """Index lines (octal mode, blob id, path; mode 0 removes) for those of `paths` whose file in
    `workdir` already is exactly `new_tree`'s version, compared after the path's clean filters."""
    found: list[tuple[str, str, str]] = []
    to_hash: list[tuple[str, pygit2.Blob]] = []
    for rel in paths:
        entry = tree_entry(new_tree, rel)
        target = workdir / rel
        # file_matches: a Blob's exact file, or no file where there is no entry (a directory never).
        if file_matches(target, entry):
            found.append(_index_line(rel, entry, "0" * len(str(new_tree.id))))
        elif _worth_hashing(entry, target):
            to_hash.append((rel, entry))
    return found + _same_after_filters(workdir, to_hash)


def _index_line(rel: str, entry: pygit2.Object | None, null_id: str) -> tuple[str, str, str]:
    """(octal mode, blob id, path) for `entry`; mode 0 and the null id remove the path."""
    if entry is None:
        return ("0", null_id, rel)
    return (f"{entry.filemode:o}", str(entry.id), rel)


def _worth_hashing(entry: pygit2.Object | None, target: Path) -> TypeGuard[pygit2.Blob]:
    """A regular file for a non-symlink blob: git's clean filters may yet make it equal."""
    return (
        isinstance(entry, pygit2.Blob)
        and entry.filemode != FileMode.LINK
        and target.is_file()
        and not target.is_symlink()
    )


def _same_after_filters(workdir: Path, to_hash: list[tuple[str, pygit2.Blob]]) -> list[tuple[str, str, str]]:
    """Index lines for the files that git, hashing them as it would store them (eol conversion, LFS
    pointer, ident), finds equal to their blob."""
    if not to_hash:
        return []
    done = subprocess.run(
        ["git", "hash-object", "--stdin-paths"],
        cwd=workdir,
        env=git_env(),
        input="".join(f"{rel}\n" for rel, _ in to_hash).encode(errors="surrogateescape"),
        capture_output=True,
    )
    ids = done.stdout.decode().split() if done.returncode == 0 else []
    return [
        (f"{entry.filemode:o}", sha, rel)
        for (rel, entry), sha in zip(to_hash, ids, strict=False)
        if sha == str(entry.id)
    ]
