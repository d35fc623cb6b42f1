"""Questions about branches and commits (nothing moves): tips, containment, history, identity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pygit2

from tuiorch.git.errors import GitError
from tuiorch.git.identity import CommitRules, Identity
from tuiorch.git.repo import Repo, locked

# What git leaves in a working tree's git dir while an operation waits for the user, and how to end it.
_OPERATION_MARKERS = (
    ("rebase-merge", "a rebase", "git rebase --continue or git rebase --abort"),
    ("rebase-apply/applying", "a git am", "git am --continue or git am --abort"),
    ("rebase-apply", "a rebase", "git rebase --continue or git rebase --abort"),
    ("MERGE_HEAD", "a merge", "git merge --continue or git merge --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue or git cherry-pick --abort"),
    ("REVERT_HEAD", "a revert", "git revert --continue or git revert --abort"),
    ("BISECT_LOG", "a bisect", "git bisect reset"),
)


def operation_in_progress(workdir: Path) -> tuple[str, str] | None:
    """("a merge", how to end it) if git is in the middle of an operation in `workdir`, else None."""
    try:
        admin = Path(pygit2.Repository(str(workdir)).path)
    except pygit2.GitError:
        return None
    for marker, what, finish in _OPERATION_MARKERS:
        if (admin / marker).exists():
            return what, finish
    return None


def discover_git_dir(start: Path) -> Path | None:
    """The git dir git would use from `start` (a linked worktree's own admin dir), or None."""
    found = pygit2.discover_repository(str(start))
    return Path(found) if found else None


def head_is_detached(workdir: Path) -> bool:
    """True if HEAD is detached in the working tree `workdir`."""
    return pygit2.Repository(str(workdir)).head_is_detached


def current_branch(workdir: Path) -> str | None:
    """The branch checked out in `workdir`; None when HEAD is detached or the branch has no commit."""
    handle = pygit2.Repository(str(workdir))
    if handle.head_is_detached:
        return None
    try:
        return handle.head.shorthand
    except pygit2.GitError:
        return None  # an unborn branch


def worktree_head(worktree: Path) -> str | None:
    """The commit HEAD points at in `worktree`, or None when it cannot be read."""
    try:
        return str(pygit2.Repository(str(worktree)).head.target)
    except (pygit2.GitError, KeyError):
        return None


def valid_branch_name(name: str) -> bool:
    """True if git accepts `name` as a branch name."""
    return bool(name) and pygit2.reference_is_valid_name(f"refs/heads/{name}")


def branch_clash(name: str, existing: Sequence[str]) -> str | None:
    """An existing branch that git cannot keep beside `name` (refs are paths: `a` and `a/b` exclude each other)."""
    for other in existing:
        if name.startswith(other + "/") or other.startswith(name + "/"):
            return other
    return None


def clash_message(branch: str, clash: str) -> str:
    return (
        f"the task branch '{branch}' clashes with the existing branch '{clash}' (git cannot hold both "
        f"'{min(branch, clash, key=len)}' and '{max(branch, clash, key=len)}'); rename that branch or "
        "change branch = \"...\" in tuiorch.toml"
    )


def _oid(sha: str) -> pygit2.Oid:
    try:
        return pygit2.Oid(hex=sha)
    except ValueError:
        raise GitError(f"{sha!r} is not a commit sha") from None


class Refs:
    """Read-only queries on branches and commits, each under the repository lock."""

    def __init__(self, repo: Repo, identity: Identity) -> None:
        self.repo = repo
        self.identity = identity

    @locked
    def tip(self, branch: str) -> str:
        return str(self.repo.commit_of(branch).id)

    @locked
    def branch_tip(self, branch: str) -> str | None:
        """The branch's sha, or None when there is no such branch."""
        ref = self.repo.handle.references.get(f"refs/heads/{branch}")
        return str(ref.peel(pygit2.Commit).id) if ref is not None else None

    @locked
    def signature(self) -> pygit2.Signature:
        """The committer git would record here (environment, includeIf, config), else IDENTITY_FALLBACK."""
        return self.identity.signatures()[1]

    @locked
    def commit_rules(self) -> CommitRules:
        return self.identity.rules()

    @locked
    def local_branches(self) -> list[str]:
        return sorted(self.repo.handle.branches.local)

    @locked
    def task_branches(self, template: str) -> list[str]:
        """Local branches that match the task branch template (e.g. task-{id})."""
        prefix, _, suffix = template.partition("{id}")
        return sorted(
            name
            for name in self.repo.handle.branches.local
            if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)
        )

    @locked
    def operations_in_progress(self, base: str) -> list[tuple[Path, str, str]]:
        """(working tree, operation, how to end it) for each checkout of `base` and the primary one
        that git has in mid-operation."""
        found: list[tuple[Path, str, str]] = []
        for workdir in dict.fromkeys([self.repo.root, *self.repo.checkouts(base)]):
            operation = operation_in_progress(workdir)
            if operation is not None:
                found.append((workdir, *operation))
        return found

    @locked
    def has_new_commits(self, branch: str, since: str) -> bool:
        """True if `branch` holds commits that `since` does not."""
        tip = self.repo.commit_of(branch).id
        return not self.repo.contains(_oid(since), tip)

    @locked
    def is_merged(self, branch: str, base: str) -> bool:
        return self.repo.contains(self.repo.commit_of(base).id, self.repo.commit_of(branch).id)

    @locked
    def branch_contains(self, branch: str, commit: str) -> bool:
        """True if `commit` is `branch`'s tip or one of its ancestors."""
        wanted = _oid(commit)
        return self.repo.contains(self.repo.commit_of(branch).id, wanted)

    @locked
    def commits_since(self, base: str, since: str) -> list[tuple[str, str]]:
        """(short sha, subject) of base's first-parent commits that `since` does not hold, oldest first.

        Reachability rather than "the commits after `since`": when the user amends or rebases base
        during the run, `since` leaves base's history, and the rewritten commits and every merge since
        still count.
        """
        try:
            stop = pygit2.Oid(hex=since)
            walker = self.repo.handle.walk(self.repo.commit_of(base).id, pygit2.enums.SortMode.TOPOLOGICAL)
            walker.simplify_first_parent()
            walker.hide(stop)
        except (ValueError, KeyError, pygit2.GitError):
            return []  # `since` is not a commit of this repository (any more)
        return [(str(c.id)[:7], c.message.split("\n", 1)[0]) for c in walker][::-1]

    @locked
    def find_merge_of(self, tip: str, base: str, limit: int = 10_000) -> str | None:
        """The first-parent commit of base that merged `tip` in (its second parent), if any."""
        wanted = pygit2.Oid(hex=tip)
        commit: pygit2.Commit | None = self.repo.commit_of(base)
        for _ in range(limit):
            if commit is None:
                return None
            if len(commit.parent_ids) > 1 and commit.parent_ids[1] == wanted:
                return str(commit.id)
            commit = commit.parents[0] if commit.parents else None
        return None
