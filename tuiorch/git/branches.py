"""Task branches: created or moved to base for a slot, deleted, moved back, their unmerged commits."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tuiorch.git.errors import GitError
from tuiorch.git.refs import branch_clash, clash_message
from tuiorch.git.repo import Repo, locked


class Branches:
    """Branch changes; `point` is called by the worktrees under their lock, the rest lock themselves."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def point(
        self,
        branch: str,
        base: str,
        base_commit: pygit2.Commit,
        reuse_path: Path | None,
        keep_commits: bool = False,
    ) -> None:
        """Create `branch` at base's tip, or move a stale one there; refuse to drop unmerged commits.

        The caller holds the repository lock.
        """
        existing = self.repo.handle.references.get(f"refs/heads/{branch}")
        if existing is None:
            self._create(branch, base_commit)
            return
        current = existing.peel(pygit2.Commit).id
        has_own_commits = not self.repo.contains(base_commit.id, current)
        if has_own_commits and not keep_commits:
            raise GitError(
                f"branch '{branch}' already exists with commits not in {base}; "
                f"run `tuiorch clean --force` or delete it (git branch -D {branch})"
            )
        self._refuse_checked_out(branch, reuse_path)
        if not has_own_commits and current != base_commit.id:
            existing.set_target(base_commit.id, f"tuiorch: reset {branch} to {base}")

    def _refuse_checked_out(self, branch: str, reuse_path: Path | None) -> None:
        """GitError if `branch` is checked out anywhere but the worktree about to be reused."""
        elsewhere = [p for p in self.repo.checkouts(branch) if p != reuse_path]
        if elsewhere:
            raise GitError(f"branch '{branch}' is checked out in {elsewhere[0]}; release it first")

    def _create(self, branch: str, base_commit: pygit2.Commit) -> None:
        handle = self.repo.handle
        clash = branch_clash(branch, list(handle.branches.local))
        if clash is not None:
            raise GitError(clash_message(branch, clash))
        try:
            handle.create_branch(branch, base_commit)
        except ValueError as exc:
            raise GitError(f"'{branch}' is not a valid branch name") from exc

    @locked
    def delete(self, branch: str, *, force: bool = False, base: str = "main") -> None:
        """Delete `branch`; refuses if it holds commits not in `base` (unless force) or is checked out."""
        ref = self.repo.handle.references.get(f"refs/heads/{branch}")
        if ref is None:
            return
        where = self.repo.checkouts(branch)
        if where:
            raise GitError(f"branch '{branch}' is checked out in {where[0]}; release that worktree first")
        tip = ref.peel(pygit2.Commit).id
        if not force and not self.repo.contains(self.repo.commit_of(base).id, tip):
            raise GitError(f"branch '{branch}' has commits not in {base}; use --force to delete it anyway")
        ref.delete()

    @locked
    def undo(self, branch: str, tip: str) -> None:
        """Move `branch` back to `tip`, one of its own earlier tips (a failed resolution's commits dropped).

        Refuses unless the branch still holds `tip` and no worktree has the branch checked out.
        """
        current = self.repo.commit_of(branch).id
        wanted = pygit2.Oid(hex=tip)
        if not self.repo.contains(current, wanted):
            raise GitError(f"branch '{branch}' no longer holds {tip[:7]}; left as it is")
        elsewhere = self.repo.checkouts(branch)
        if elsewhere:
            raise GitError(f"branch '{branch}' is checked out in {elsewhere[0]}; left as it is")
        self.repo.handle.references.create(f"refs/heads/{branch}", wanted, force=True)

    @locked
    def unmerged_commits(self, branch: str, base_tip: str) -> list[tuple[str, str]]:
        """(short sha, subject) of `branch`'s commits that `base_tip` does not hold, newest first."""
        walker = self.repo.handle.walk(self.repo.commit_of(branch).id, pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base_tip))
        return [(str(c.id)[:7], c.message.split("\n", 1)[0]) for c in walker]

    @locked
    def checkouts(self, branch: str) -> list[Path]:
        """Working trees (primary and linked) whose HEAD is attached to `branch`."""
        return self.repo.checkouts(branch)
