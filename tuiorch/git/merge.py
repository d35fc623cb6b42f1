"""Merging a task branch into base as a --no-ff commit: predict conflicts, prepare the merge commit,
land it by compare-and-swap (land.py), with the package's only retry loop for a busy or moving ref."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pygit2

from tuiorch.git.errors import GitError
from tuiorch.git.identity import Identity
from tuiorch.git.land import land_once
from tuiorch.git.merge_commit import write_merge_commit
from tuiorch.git.outcomes import MergeOutcome, PreparedMerge
from tuiorch.git.repo import Repo, locked
from tuiorch.git.trees import changed_paths, conflict_kind_in, entry_path

# How often a merge recomputes when base keeps moving or its ref lock is held by someone else.
_MERGE_ATTEMPTS = 8
_LOCK_RETRY_DELAY = 0.05


def retry_busy(attempt: Callable[[], MergeOutcome | None], *, again_if_moved: bool) -> MergeOutcome | None:
    """Call `attempt` until it lands or gives a final outcome: None from it means a lock was busy
    (wait a little, then again); "moved" means base moved (again at once, if `again_if_moved`).

    None when every one of the _MERGE_ATTEMPTS attempts was busy or moved.
    """
    for _attempt in range(_MERGE_ATTEMPTS):
        outcome = attempt()
        if outcome is None:
            time.sleep(_LOCK_RETRY_DELAY)  # someone else holds the ref lock; try again shortly
            continue
        if again_if_moved and outcome.status == "moved":
            continue
        return outcome
    return None


class Merges:
    """Merges into base; each public method takes the repository lock."""

    def __init__(self, repo: Repo, identity: Identity) -> None:
        self.repo = repo
        self.identity = identity

    @locked
    def predict(self, branch: str, base: str) -> tuple[str, ...]:
        """Paths that would conflict if `branch` were merged into `base` now (in memory only)."""
        ours, theirs = self.repo.commit_of(base).id, self.repo.commit_of(branch).id
        if self.repo.contains(ours, theirs):
            return ()
        merged = self.repo.handle.merge_commits(ours, theirs)
        if not merged.conflicts:
            return ()
        return tuple(sorted(entry_path(entries) for entries in merged.conflicts))

    @locked
    def merge(
        self,
        branch: str,
        base: str,
        message: str,
        *,
        _before_cas: Callable[[], None] | None = None,
    ) -> MergeOutcome:
        """Merge `branch` into `base` as a two-parent commit; base moves only by compare-and-swap.

        Order per attempt: compute the merge in memory against base's tip; lock refs/heads/<base>
        (git's own lock file, so no other git can move it meanwhile) and check it still is that tip,
        else recompute; refuse (blocked) if the user's dirty files intersect the merge's changed
        paths in a working tree where base is checked out; update only those paths there (SAFE
        checkout, so nothing of the user's is overwritten); then move the ref and release the lock.
        While the lock is held a concurrent `git commit` on base fails instead of racing us, so the
        working tree and the ref change together; if moving the ref fails the paths are restored.
        This is prepare + land with the recompute loop and no check in between.
        `_before_cas` is a test hook run after computing and before locking (to simulate a race).
        """

        def attempt() -> MergeOutcome | None:
            prepared = self._prepare(branch, base, message)
            if isinstance(prepared, MergeOutcome):
                return prepared
            if _before_cas is not None:
                _before_cas()
            return land_once(self.repo, prepared)

        outcome = retry_busy(attempt, again_if_moved=True)
        if outcome is not None:
            return outcome
        # Not a failure of the task's work: the caller keeps it and tries again later.
        return MergeOutcome(
            "blocked",
            None,
            message=(
                f"{base} kept changing or stayed locked (refs/heads/{base}.lock held by another git process); "
                "tuiorch retries"
            ),
        )

    @locked
    def prepare(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        """Compute the --no-ff merge against base's tip and write its commit object; no ref moves.

        Returns a MergeOutcome instead when there is nothing to land: "already" (base contains the
        branch) or "conflict" (with paths and kinds, exactly as merge reports them).
        """
        return self._prepare(branch, base, message)

    @locked
    def land(self, prepared: PreparedMerge, message: str | None = None) -> MergeOutcome:
        """Move base to exactly `prepared.commit` if base still is `prepared.base_tip`.

        Same safety as merge (ref lock, blocked on the user's dirty files, SAFE update of checked-out
        trees). "moved": base changed since prepare; nothing was changed, recompute (and re-check).
        "blocked": retry later with the same PreparedMerge. `message` (if it differs) lands a commit
        with the same tree and parents but that message: the checked content is the same, only the
        commit id changes.
        """
        self._verify_prepared(prepared)
        if message is not None and message != prepared.message:
            prepared = self._reworded(prepared, message)
        outcome = retry_busy(lambda: land_once(self.repo, prepared), again_if_moved=False)
        if outcome is not None:
            return outcome
        return MergeOutcome(
            "blocked",
            None,
            prepared.paths,
            message=f"{prepared.base} is locked by another git process (refs/heads/{prepared.base}.lock); tuiorch retries",
        )

    # ---------------------------------------------------- under the lock

    def _prepare(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        old_tip = self.repo.commit_of(base)
        branch_tip = self.repo.commit_of(branch)
        if self.repo.contains(old_tip.id, branch_tip.id):
            return MergeOutcome("already", str(old_tip.id), message=f"{branch} is already merged into {base}")
        handle = self.repo.handle
        merged = handle.merge_commits(old_tip.id, branch_tip.id)
        if merged.conflicts:
            kinds = {
                entry_path(e): conflict_kind_in(entry_path(e), *e, old_tip.tree, branch_tip.tree)
                for e in merged.conflicts
            }
            paths = tuple(sorted(kinds))
            return MergeOutcome("conflict", None, paths, kinds, f"{branch} conflicts with {base} in {', '.join(paths)}")
        tree_id = merged.write_tree(handle)
        new_tree = handle[tree_id]
        assert isinstance(new_tree, pygit2.Tree)
        commit_id = write_merge_commit(
            self.repo, self.identity, tree_id, [old_tip.id, branch_tip.id], message, branch, base
        )
        return PreparedMerge(
            branch=branch,
            base=base,
            commit=str(commit_id),
            base_tip=str(old_tip.id),
            branch_tip=str(branch_tip.id),
            tree=str(tree_id),
            paths=tuple(sorted(changed_paths(old_tip.tree, new_tree))),
            message=message,
        )

    def _verify_prepared(self, prepared: PreparedMerge) -> None:
        """Refuse a PreparedMerge whose commit is not the two-parent merge it claims to be."""
        try:
            commit = self.repo.handle[pygit2.Oid(hex=prepared.commit)]
        except (KeyError, ValueError):
            raise GitError(f"prepared merge commit {prepared.commit} does not exist") from None
        parent_ids = [str(p) for p in commit.parent_ids] if isinstance(commit, pygit2.Commit) else []
        if parent_ids != [prepared.base_tip, prepared.branch_tip] or str(commit.tree_id) != prepared.tree:
            raise GitError(f"{prepared.commit} is not the prepared merge of {prepared.branch} into {prepared.base}")

    def _reworded(self, prepared: PreparedMerge, message: str) -> PreparedMerge:
        parent_ids = [pygit2.Oid(hex=prepared.base_tip), pygit2.Oid(hex=prepared.branch_tip)]
        commit_id = write_merge_commit(
            self.repo, self.identity, pygit2.Oid(hex=prepared.tree), parent_ids, message, prepared.branch, prepared.base
        )
        return replace(prepared, commit=str(commit_id), message=message)
