"""Committing what an agent left uncommitted in its worktree, with git itself (hooks, filters, identity
and signing apply as they would to the user's own commit)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pygit2
from pygit2.enums import FileStatus

from tuiorch.git.cleaning import is_scratch
from tuiorch.git.errors import GitError, UncommittedWork
from tuiorch.git.identity import Identity
from tuiorch.git.proc import output, with_task_worktree_config
from tuiorch.git.refs import operation_in_progress
from tuiorch.git.repo import Repo, own_handles
from tuiorch.git.trees import conflicts_of


class Leftovers:
    """`commit` is the only entry. It works on the worktree's own handle and with git processes, never
    on the repository's shared handle, so it takes no lock: merges and the other slots go on meanwhile."""

    def __init__(self, repo: Repo, identity: Identity) -> None:
        self.repo = repo
        self.identity = identity

    @own_handles
    def commit(
        self, worktree: Path, message: str, branch: str | None = None, scratch: Sequence[str] = ()
    ) -> str | None:
        """Commit everything uncommitted in `worktree` with `git add -A` + `git commit`; None when clean.

        git itself commits, so the repository's hooks (pre-commit, commit-msg), filters (Git LFS
        stores a pointer), identity and signing apply as they would to the user's own commit.
        With `branch`, refuses (GitError) unless the worktree still has that branch checked out: an
        agent that switched branches must not have its leftovers committed somewhere else. Untracked
        paths matching a `scratch` pattern (an agent CLI's own files, matched on any path component)
        are left out. Work that cannot be committed raises UncommittedWork: it stays in the worktree,
        which the caller must keep (a repository the agent made inside it, a hook's rejection).
        """
        worktree = Path(worktree).absolute()
        if not worktree.is_dir():
            raise GitError(f"the worktree {worktree} is gone (did the agent delete it?)")
        self.repo.clear_dead_agent_lock(worktree)
        wt_repo = pygit2.Repository(str(worktree))
        _refuse_unfinished_operation(worktree, wt_repo)
        if branch is not None:
            _refuse_other_branch(worktree, wt_repo, branch)
        env = with_task_worktree_config(self.identity.env())
        pathspecs = self._pathspecs(worktree, wt_repo, scratch, env)
        if not pathspecs:
            return None
        return self._add_and_commit(worktree, pathspecs, message, env)

    def _pathspecs(
        self, worktree: Path, wt_repo: pygit2.Repository, scratch: Sequence[str], env: dict[str, str]
    ) -> list[str]:
        """What `git add` is given: the changed paths except scratch files; [] when nothing changed."""
        changed, untracked = self._changes(worktree, wt_repo, env)
        if changed == []:
            return []  # nothing to commit: no git process needed (most agents commit their work)
        left_out = {p for p in untracked if is_scratch(p.rstrip("/"), scratch)}
        _refuse_nested_repositories(worktree, [p for p in untracked if p not in left_out])
        return _add_pathspecs(changed, left_out)

    def _changes(
        self, worktree: Path, wt_repo: pygit2.Repository, env: dict[str, str]
    ) -> tuple[list[str] | None, list[str]]:
        """(the changed paths, or None when only git can tell; the untracked paths)."""
        try:
            # libgit2's status names what changed, so git only looks at those paths (a full `git add -A`
            # rescans the whole tree, slow on a big checkout); a nested repository shows as "dir/".
            status = wt_repo.status(untracked_files="all")
        except pygit2.GitError:
            # An index libgit2 cannot read: git looks at everything.
            return None, self._untracked_by_git(worktree, env)
        return _changed_and_untracked(status)

    def _untracked_by_git(self, worktree: Path, env: dict[str, str]) -> list[str]:
        listed = self.repo.git(["ls-files", "-z", "--others", "--exclude-standard"], cwd=worktree, env=env)
        if listed.returncode != 0:
            raise UncommittedWork(
                f"git ls-files failed in {worktree}: {output(listed)}; its work is kept in {worktree}", worktree
            ) from None
        return [os.fsdecode(p) for p in listed.stdout.split(b"\0") if p]

    def _add_and_commit(self, worktree: Path, pathspecs: list[str], message: str, env: dict[str, str]) -> str | None:
        kept = f"its work is kept in {worktree}"
        git = self.repo.git
        added = git(
            ["add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
            cwd=worktree,
            env=env,
            input="\0".join(pathspecs).encode(errors="surrogateescape"),
        )
        if added.returncode != 0:
            raise UncommittedWork(f"git add -A failed in {worktree}: {output(added)}; {kept}", worktree)
        done = git(["commit", "--quiet", "--no-edit", "-F", "-"], cwd=worktree, env=env, input=message.encode())
        if done.returncode != 0:
            staged = git(["diff", "--cached", "--quiet", "--ignore-submodules=dirty"], cwd=worktree, env=env)
            if staged.returncode == 0:
                return None  # git's filters (e.g. Git LFS) found nothing really changed
            raise UncommittedWork(f"git commit refused the agent's leftovers: {output(done)}; {kept}", worktree)
        return str(pygit2.Repository(str(worktree)).head.target)


def _changed_and_untracked(status: dict[str, int]) -> tuple[list[str], list[str]]:
    """(the changed paths, the untracked ones among them) in libgit2's status, ignored files aside."""
    changed = [p for p, flags in status.items() if flags != FileStatus.IGNORED]
    return changed, [p for p in changed if status[p] & FileStatus.WT_NEW]


def _add_pathspecs(changed: list[str] | None, left_out: set[str]) -> list[str]:
    """The pathspecs naming `changed` (None: everything) without the `left_out` paths."""
    if changed is None:
        return ["."] + [f":(exclude,literal){p}" for p in sorted(left_out)]
    return [f":(literal){p}" for p in changed if p not in left_out]


def _refuse_nested_repositories(worktree: Path, untracked: list[str]) -> None:
    """UncommittedWork if the agent made a repository inside its worktree (status shows it as "dir/")."""
    nested = [p for p in untracked if p.endswith("/")]
    if nested:
        raise UncommittedWork(
            f"the agent made a git repository inside its worktree ({', '.join(nested)}); tuiorch cannot "
            f"commit it. Remove its .git or make it a submodule; its work is kept in {worktree}",
            worktree,
        )


def _refuse_unfinished_operation(worktree: Path, wt_repo: pygit2.Repository) -> None:
    """UncommittedWork if the agent left a merge, rebase ... or conflicts half done."""
    # `git add -A` would stage conflict markers as content and `git commit` conclude the agent's
    # half-done merge (or cherry-pick) with them: the agent's own operation is not finished for it.
    operation = operation_in_progress(worktree)
    conflicts = conflicts_of(wt_repo)
    if operation is None and not conflicts:
        return
    what, finish = operation or ("unresolved conflicts", "resolve them or git checkout --ours/--theirs")
    detail = f" (conflicts in {', '.join(conflicts)})" if conflicts else ""
    raise UncommittedWork(
        f"the agent left {what} in progress in its worktree{detail}; tuiorch does not commit it "
        f"({finish} there); its work is kept in {worktree}",
        worktree,
    )


def _refuse_other_branch(worktree: Path, wt_repo: pygit2.Repository, branch: str) -> None:
    """Refuse unless `branch` is still checked out in the worktree."""
    head = None if wt_repo.head_is_detached else wt_repo.head.shorthand
    if head == branch:
        return
    # A named branch keeps its commits; a detached HEAD's, and anything uncommitted, live only in
    # the worktree, which is then kept.
    where = f"branch {head}" if head else "a detached HEAD"
    dirty = _has_changes(wt_repo)
    if head is None or dirty:
        raise UncommittedWork(f"the agent left {branch} for {where}; its work is kept in {worktree}", worktree)
    raise GitError(f"the agent left {branch} for {where} in {worktree}; its work there is kept")


def _has_changes(wt_repo: pygit2.Repository) -> bool:
    """True if anything in the worktree is changed or untracked (ignored files aside)."""
    return any(flags != FileStatus.IGNORED for flags in wt_repo.status(untracked_files="all").values())
