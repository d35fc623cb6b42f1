"""One repository opened once: its libgit2 handle, the lock every libgit2 use takes, and the few
lookups every other module of the package builds on.

Locking has one style, because libgit2 objects must not be used from two threads at once and the
engine calls the git package through `asyncio.to_thread`: each public method of a noun object (refs,
worktrees, branches, leftovers, merges, conflicts) is decorated with `@locked`, which holds
`Repo.lock` for the call, or with `@own_handles` when it touches only libgit2 handles it opens
itself (a worktree's) and git processes, so it needs no lock. Both reword libgit2's own errors as
GitError. Helpers called from inside a locked method never lock again (the lock is not reentrant);
long work that needs no shared handle (a checkout, deleting a big directory) is split out of the
locked steps around it, so merges and the other slots do not wait for it.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import pygit2
from pygit2.enums import ReferenceType

from tuiorch.git import proc
from tuiorch.git.errors import GitError


class Repo:
    """The repository: libgit2 handle on the common git dir, its paths, and its lock."""

    def __init__(self, root: Path) -> None:
        handle, workdir, git_dir = open_repository(Path(root))
        #: The main repository (refs, objects and the worktree list are shared by every worktree).
        self.handle = handle
        #: The working tree tuiorch was started in (a linked worktree's, when started in one), resolved.
        self.root = workdir
        #: The common git dir; tuiorch's run state lives in git_dir / "tuiorch".
        self.git_dir = git_dir
        self.lock = threading.Lock()

    def reader(self) -> Repo:
        """The same repository on a libgit2 handle and a lock of its own, for queries only (tips, history,
        branches): they need not wait for a merge holding this handle's lock (a slot's agent collected,
        the next task's start). What this handle writes is on disk at once, so the reader sees it."""
        other = object.__new__(Repo)
        # Opened from the work tree, as git finds it (a .git file, a separate git dir), like this handle.
        other.handle = pygit2.Repository(self.handle.workdir or self.handle.path)
        other.root, other.git_dir = self.root, self.git_dir
        other.lock = threading.Lock()
        return other

    # ------------------------------------------------------------- git CLI

    def git(
        self, args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git (in the primary working tree unless `cwd`); the caller judges the exit code."""
        return proc.run(args, cwd=cwd or self.root, env=env, input=input)

    def run_git(self, args: list[str], env: dict[str, str] | None = None) -> str:
        """Run git in the primary working tree; its stdout, or GitError."""
        return proc.run_checked(args, cwd=self.root, env=env)

    # ---------------------------------------------------------------- refs

    def commit_of(self, branch: str) -> pygit2.Commit:
        try:
            ref = self.handle.references[f"refs/heads/{branch}"]
        except (KeyError, pygit2.InvalidSpecError):
            raise GitError(f"branch '{branch}' does not exist") from None
        commit = ref.peel(pygit2.Commit)
        assert isinstance(commit, pygit2.Commit)
        return commit

    def contains(self, tip: pygit2.Oid, commit: pygit2.Oid) -> bool:
        """True if `commit` is `tip` or one of its ancestors."""
        return tip == commit or self.handle.descendant_of(tip, commit)

    # ----------------------------------------------------------- checkouts

    def primary_workdir(self) -> Path | None:
        if self.handle.is_bare or not self.handle.workdir:
            return None
        return Path(self.handle.workdir).resolve()

    def checkouts(self, branch: str) -> list[Path]:
        """Working trees (primary and linked) whose HEAD is attached to `branch`."""
        refname = f"refs/heads/{branch}"
        found: list[Path] = []
        primary = self.primary_workdir()
        if primary is not None:
            head = self.handle.lookup_reference("HEAD")
            if head.type == ReferenceType.SYMBOLIC and head.target == refname:
                found.append(primary)
        worktrees = self.git_dir / "worktrees"
        if not worktrees.is_dir():
            return found
        for admin in sorted(worktrees.iterdir()):
            head_file, gitdir_file = admin / "HEAD", admin / "gitdir"
            if not (head_file.is_file() and gitdir_file.is_file()):
                continue
            if head_file.read_text().strip() != f"ref: {refname}":
                continue
            workdir = Path(gitdir_file.read_text().strip()).parent
            if workdir.is_dir():
                found.append(workdir.resolve())
        return found

    def worktree_admin(self, path: Path) -> Path | None:
        """The admin dir (.git/worktrees/<name>) if `path` is a linked worktree of this repository."""
        gitfile = path / ".git"
        if not gitfile.is_file():
            return None
        try:
            text = gitfile.read_text().strip()
        except OSError:
            return None
        if not text.startswith("gitdir:"):
            return None
        admin = (path / text.removeprefix("gitdir:").strip()).resolve()
        if admin.parent != self.git_dir / "worktrees" or not admin.is_dir():
            return None
        return admin

    def clear_dead_agent_lock(self, path: Path) -> None:
        """Remove an index.lock left in one of our worktrees by a killed agent.

        Called only when no agent runs there (its whole process group is gone), so the lock is stale.
        """
        admin = self.worktree_admin(path)
        if admin is not None:
            (admin / "index.lock").unlink(missing_ok=True)


class _HasRepo(Protocol):
    repo: Repo


S = TypeVar("S", bound=_HasRepo)
P = ParamSpec("P")
R = TypeVar("R")


def locked(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a noun object's public method under its repository's lock (one libgit2 user at a time)."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.repo.lock:
            try:
                return method(self, *args, **kwargs)
            except pygit2.GitError as exc:
                raise reworded(exc) from exc

    return wrapper


def own_handles(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Mark a public method that uses only libgit2 handles it opens itself: no lock, errors reworded."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except pygit2.GitError as exc:
            raise reworded(exc) from exc

    wrapper.own_handles = True  # type: ignore[attr-defined]
    return wrapper


def reworded(exc: pygit2.GitError) -> GitError:
    """libgit2's own errors (a worktree deleted under us, a corrupt ref) reach the user as ours."""
    return GitError(f"git: {exc}")


# ------------------------------------------------------------------ opening


def open_repository(root: Path) -> tuple[pygit2.Repository, Path, Path]:
    """(libgit2 handle on the common git dir, the working tree holding `root`, common git dir).

    GitError, worded for the user, for a missing path, no repository, a bare one, one without
    commits, a SHA-256 one or one owned by someone else.
    """
    if not root.exists():
        raise GitError(f"{root} does not exist")
    found = pygit2.discover_repository(str(root))
    if found is None:
        raise GitError(f"{root} is not inside a git repository (run `git init` first)")
    discovered = _with_git_s_work_tree(root, _open_discovered(root, found))
    if discovered.is_bare or discovered.workdir is None:
        raise GitError(f"{found} is a bare repository; tuiorch needs a working tree")
    if discovered.head_is_unborn:
        raise GitError(f"{discovered.workdir} has no commits yet; make a first commit before running tuiorch")
    handle, git_dir = _common(discovered, Path(found))
    return handle, Path(discovered.workdir).resolve(), git_dir


def _common(discovered: pygit2.Repository, admin_dir: Path) -> tuple[pygit2.Repository, Path]:
    """The handle on the common git dir and its path (a linked worktree's own handle will not do)."""
    commondir_file = admin_dir / "commondir"
    if commondir_file.is_file():
        # A linked worktree: refs, objects and the worktree list live in the main repository.
        git_dir = (admin_dir / commondir_file.read_text().strip()).resolve()
        return pygit2.Repository(str(git_dir)), git_dir
    return discovered, admin_dir.resolve()


def _with_git_s_work_tree(root: Path, discovered: pygit2.Repository) -> pygit2.Repository:
    """Opened from its git dir, libgit2 takes that folder's parent as the work tree, which is wrong
    for `git init --separate-git-dir`: git itself names the work tree."""
    if discovered.is_bare or discovered.workdir is None or _plain_layout(root, discovered):
        return discovered
    toplevel = proc.show_toplevel(root)
    if toplevel is not None and Path(discovered.workdir).resolve() != toplevel:
        return pygit2.Repository(str(toplevel))
    return discovered


def _plain_layout(root: Path, discovered: pygit2.Repository) -> bool:
    """A .git folder in the work tree that holds `root`, and no core.worktree: libgit2's work tree is
    git's, with no need to ask git (a process on every opening of the repository)."""
    git_dir = Path(discovered.path).resolve()
    workdir = Path(str(discovered.workdir)).resolve()
    return (
        git_dir.name == ".git"
        and git_dir.parent == workdir
        and root.resolve().is_relative_to(workdir)
        and "core.worktree" not in discovered.config
    )


def _open_discovered(root: Path, found: str) -> pygit2.Repository:
    try:
        return pygit2.Repository(found)
    except pygit2.GitError as exc:
        if "object format" in str(exc):
            raise GitError(
                f"{root} is a SHA-256 repository (extensions.objectFormat = sha256); tuiorch's git library "
                f"(libgit2 {pygit2.LIBGIT2_VERSION}) reads only SHA-1 repositories: run tuiorch on a SHA-1 clone"
            ) from None
        if "not owned by current user" in str(exc):
            owned = Path(found).parent if Path(found).name == ".git" else Path(found)
            raise GitError(
                f"{owned} belongs to another user and is not listed in safe.directory, so git refuses it too; "
                f"if you trust it: git config --global --add safe.directory {owned}"
            ) from None
        raise GitError(f"{root}: git: {exc}") from None
