"""Every git side effect of tuiorch: worktrees, branches, the in-memory --no-ff merge and conflicts.

All public methods are synchronous and take the instance's lock, so the engine can call them through
`asyncio.to_thread` (libgit2 objects must not be used from two threads at once). Worktrees are created
with the `git worktree add` CLI because pygit2's `add_worktree` holds the GIL for seconds.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import pygit2
from pygit2.enums import (
    CheckoutStrategy,
    DeltaStatus,
    DiffOption,
    FileMode,
    FileStatus,
    ReferenceType,
    RepositoryState,
)

from tuiorch.checkout import (
    Busy,
    Checkout,
    IndexUpdate,
    Refused,
    all_checkouts,
    find_checkouts,
    git_env,
    git_processes_in,
    hidden_from_status,
    operation_in_progress,
    paths_collide,
    wait_for_exit,
)
from tuiorch.diffs import ADDED, CONTEXT, REMOVED, DiffHunk, DiffLine, FileDiff, TaskDiff

IDENTITY_FALLBACK = ("tuiorch", "tuiorch@localhost")

# "moved" only comes from land_merge: base is no longer the tip the merge was prepared on.
MergeStatus = Literal["merged", "conflict", "blocked", "already", "moved"]
Side = Literal["ours", "theirs"]

# How often merge() recomputes when base keeps moving or its ref lock is held by someone else.
_MERGE_ATTEMPTS = 8
_LOCK_RETRY_DELAY = 0.05
#: How long a merge waits for a git command of the user's to release the index (like git's ref lock wait).
_INDEX_LOCK_WAIT = 0.2
#: How long the user's index stays locked after base moved (see _land): without /proc, and at most.
_SWITCH_GRACE = 0.05
_SWITCH_GRACE_MAX = 1.0
_MARKER_PREFIXES = (b"<<<<<<< ", b">>>>>>> ")
_MARKER_SEPARATOR = b"======="
_BINARY_PLACEHOLDER = "[binary file, {size} bytes]"
#: The review screen shows at most this many diff lines of a task (the counts are always whole).
DIFF_MAX_LINES = 20_000
_DIFF_KINDS = {" ": CONTEXT, "+": ADDED, "-": REMOVED}
_DELTA_STATUS = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.UNTRACKED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
    DeltaStatus.TYPECHANGE: "type changed",
}


class GitError(Exception):
    """A git problem, worded for the user."""


class UncommittedWork(GitError):
    """An agent's work that tuiorch could not commit; it stays in its worktree, which must be kept."""

    def __init__(self, message: str, worktree: Path) -> None:
        super().__init__(message)
        self.worktree = worktree


# Every git tuiorch or an agent runs in a task worktree gets these: a full checkout (a sparse cone
# inherited from the user's checkout would make absent files look deleted) and a plain index that
# libgit2 can read (it refuses split and sparse indexes).
TASK_WORKTREE_CONFIG = {
    "core.sparseCheckout": "false",
    "core.sparseCheckoutCone": "false",
    "index.sparse": "false",
    "core.splitIndex": "false",
}
# Hooks `git merge --no-ff` runs before it writes the merge commit.
_MERGE_HOOKS = ("pre-merge-commit", "prepare-commit-msg", "commit-msg")


def with_task_worktree_config(env: dict[str, str]) -> dict[str, str]:
    """`env` plus TASK_WORKTREE_CONFIG as git's GIT_CONFIG_COUNT entries (kept after any already set)."""
    merged = dict(env)
    try:
        count = int(merged.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for key, value in TASK_WORKTREE_CONFIG.items():
        merged[f"GIT_CONFIG_KEY_{count}"] = key
        merged[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    merged["GIT_CONFIG_COUNT"] = str(count)
    return merged


@dataclass(frozen=True)
class CommitRules:
    """How git would make a commit in this repository: who, signed or not, which hooks.

    author/committer are None when git knows no identity (it would refuse to commit); tuiorch then
    uses IDENTITY_FALLBACK.
    """

    author: tuple[str, str] | None
    committer: tuple[str, str] | None
    sign: bool
    hooks_dir: Path

    def hook(self, name: str) -> Path | None:
        """The hook git would run, or None (git skips a hook file that is not executable)."""
        path = self.hooks_dir / name
        return path if path.is_file() and os.access(path, os.X_OK) else None


@dataclass
class MergeOutcome:
    status: MergeStatus
    commit: str | None = None
    paths: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class PreparedMerge:
    """A --no-ff merge commit written to the object store but on no branch yet.

    Check it (checkout_detached + a check command), then land_merge it: base moves to exactly this
    commit, and only if base still is `base_tip`.
    """

    branch: str
    base: str
    commit: str  # two parents: (base_tip, branch_tip)
    base_tip: str
    branch_tip: str
    tree: str
    paths: tuple[str, ...]  # what the merge changes relative to base_tip
    message: str


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[P, R]) -> Callable[P, R]:
    """Run a public method under the instance lock (one libgit2 user at a time)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        with self._lock:  # type: ignore[attr-defined]
            try:
                return method(*args, **kwargs)
            except pygit2.GitError as exc:
                # libgit2's own errors (a worktree deleted under us, a corrupt ref) reach the user as ours.
                raise GitError(f"git: {exc}") from exc

    return wrapper


class _LockBusy(Exception):
    """Internal: another process holds base's ref lock."""


class _Refused(Exception):
    """Internal: the merge must not land now; carries the outcome to report."""

    def __init__(self, outcome: MergeOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _git_env() -> dict[str, str]:
    """The environment for git subprocesses, without variables that would redirect them elsewhere."""
    env = dict(os.environ)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
        env.pop(name, None)
    return env


def _show_toplevel(path: Path) -> Path | None:
    """The work tree git finds from `path` (core.worktree, a .git file), or None outside one."""
    cwd = path if path.is_dir() else path.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None  # no git on PATH: the caller reports that where it matters
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return Path(os.fsdecode(done.stdout.strip())).resolve()


def branch_clash(name: str, existing: Sequence[str]) -> str | None:
    """An existing branch that git cannot keep beside `name` (refs are paths: `a` and `a/b` exclude each other)."""
    for other in existing:
        if name.startswith(other + "/") or other.startswith(name + "/"):
            return other
    return None


def _clash_message(branch: str, clash: str) -> str:
    return (
        f"the task branch '{branch}' clashes with the existing branch '{clash}' (git cannot hold both "
        f"'{min(branch, clash, key=len)}' and '{max(branch, clash, key=len)}'); rename that branch or "
        "change branch = \"...\" in tuiorch.toml"
    )


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


def _operation_in_progress(workdir: Path) -> tuple[str, str] | None:
    """("a merge", how to end it) if git is in the middle of an operation in `workdir`, else None."""
    try:
        admin = Path(pygit2.Repository(str(workdir)).path)
    except pygit2.GitError:
        return None
    for marker, what, finish in _OPERATION_MARKERS:
        if (admin / marker).exists():
            return what, finish
    return None


def _parse_ident(line: str) -> tuple[str, str] | None:
    """("Name", "email") from `git var`'s "Name <email> 1700000000 +0000"."""
    name, sep, rest = line.partition(" <")
    email, sep2, _ = rest.partition(">")
    return (name.strip(), email.strip()) if sep and sep2 else None


def _output(done: subprocess.CompletedProcess[bytes]) -> str:
    """What a failed git (or hook) said, on stderr and stdout."""
    return (done.stderr + done.stdout).decode(errors="replace").strip() or f"exit {done.returncode}"


def _has_markers(data: bytes) -> bool:
    """True if `data` holds a conflict marker line."""
    for line in data.splitlines():
        if line.startswith(_MARKER_PREFIXES) or line.rstrip() == _MARKER_SEPARATOR:
            return True
    return False


def _conflict_kind(ancestor: object, ours: object, theirs: object) -> str:
    """Name a conflict the way the triage modal shows it (ours = base, theirs = task)."""
    if ours is None:
        return "modify/delete"  # base deleted what the task modified
    if theirs is None:
        return "delete/modify"  # the task deleted what base modified
    if ancestor is None:
        return "add/add"
    return "content"


def _conflict_kind_in(
    path: str, ancestor: object, ours: object, theirs: object, base_tree: pygit2.Tree, task_tree: pygit2.Tree
) -> str:
    """_conflict_kind, told apart from a deletion where one side has a directory at `path` (as git says)."""
    if (ours is None and isinstance(_tree_entry(base_tree, path), pygit2.Tree)) or (
        theirs is None and isinstance(_tree_entry(task_tree, path), pygit2.Tree)
    ):
        return "file/directory"
    return _conflict_kind(ancestor, ours, theirs)


def _entry_path(entries: tuple[pygit2.IndexEntry | None, ...]) -> str:
    return next(e.path for e in entries if e is not None)


def _blob_text(repo: pygit2.Repository, blob_id: pygit2.Oid) -> str:
    blob = repo[blob_id]
    assert isinstance(blob, pygit2.Blob)
    if blob.is_binary:
        return _BINARY_PLACEHOLDER.format(size=blob.size)
    return blob.data.decode("utf-8", errors="replace")


def _git_path(path: str) -> bytes:
    """A path as git stores it: pygit2 hands non-UTF-8 names over with surrogate escapes, and
    takes them back only as bytes."""
    return path.encode("utf-8", "surrogateescape")


def _tree_entry(tree: pygit2.Tree, path: str) -> pygit2.Object | None:
    try:
        return tree[path]
    except KeyError:
        return None
    except UnicodeEncodeError:
        return _tree_entry_bytes(tree, _git_path(path))


def _tree_entry_bytes(tree: pygit2.Tree, path: bytes) -> pygit2.Object | None:
    """Walk to a path component by component, comparing raw names (a non-UTF-8 name on the way)."""
    node: pygit2.Object = tree
    for part in path.split(b"/"):
        if not isinstance(node, pygit2.Tree):
            return None
        found = next((child for child in node if _git_path(child.name or "") == part), None)
        if found is None:
            return None
        node = found
    return node


def _normalize_keep(keep: Sequence[str]) -> set[str]:
    cleaned = set()
    for raw in keep:
        rel = raw.strip().strip("/")
        while rel.startswith("./"):
            rel = rel[2:]
        if rel and rel != ".git" and ".." not in Path(rel).parts:
            cleaned.add(rel)
    return cleaned


def _exclude_pattern(rel: str) -> str:
    """An anchored info/exclude line matching exactly the directory `rel`."""
    escaped = "".join("\\" + ch if ch in "*?[]\\!#" else ch for ch in rel)
    return f"/{escaped}/"


class GitRepo:
    """One repository, opened once; every git side effect of tuiorch goes through here."""

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.exists():
            raise GitError(f"{root} does not exist")
        found = pygit2.discover_repository(str(root))
        if found is None:
            raise GitError(f"{root} is not inside a git repository (run `git init` first)")
        try:
            discovered = pygit2.Repository(found)
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
        if not discovered.is_bare and discovered.workdir is not None:
            # Opened from its git dir, libgit2 takes that folder's parent as the work tree, which is
            # wrong for `git init --separate-git-dir`: git itself names the work tree.
            toplevel = _show_toplevel(root)
            if toplevel is not None and Path(discovered.workdir).resolve() != toplevel:
                discovered = pygit2.Repository(str(toplevel))
        if discovered.is_bare or discovered.workdir is None:
            raise GitError(f"{found} is a bare repository; tuiorch needs a working tree")
        if discovered.head_is_unborn:
            raise GitError(
                f"{discovered.workdir} has no commits yet; make a first commit before running tuiorch"
            )
        admin_dir = Path(found)
        commondir_file = admin_dir / "commondir"
        if commondir_file.is_file():
            # A linked worktree: refs, objects and the worktree list live in the main repository.
            self.git_dir = (admin_dir / commondir_file.read_text().strip()).resolve()
            self._repo = pygit2.Repository(str(self.git_dir))
        else:
            self.git_dir = admin_dir.resolve()
            self._repo = discovered
        self.root = Path(discovered.workdir).resolve()
        self._lock = threading.Lock()
        self._commit_rules: CommitRules | None = None
        #: Worktrees being made by `git worktree add` outside the lock (see prepare_worktree).
        self._creating: set[Path] = set()
        self._add_lock = threading.Lock()
        #: Refs holding work found uncommitted in a slot about to be reused (see take_rescued).
        self._rescued: list[str] = []

    # ----------------------------------------------------------------- basics

    def _commit_of(self, branch: str) -> pygit2.Commit:
        try:
            ref = self._repo.references[f"refs/heads/{branch}"]
        except (KeyError, pygit2.InvalidSpecError):
            raise GitError(f"branch '{branch}' does not exist") from None
        commit = ref.peel(pygit2.Commit)
        assert isinstance(commit, pygit2.Commit)
        return commit

    def _contains(self, tip: pygit2.Oid, commit: pygit2.Oid) -> bool:
        """True if `commit` is `tip` or one of its ancestors."""
        return tip == commit or self._repo.descendant_of(tip, commit)

    @_locked
    def tip(self, branch: str) -> str:
        return str(self._commit_of(branch).id)

    @_locked
    def signature(self) -> pygit2.Signature:
        """The committer git would record here (environment, includeIf, config), else IDENTITY_FALLBACK."""
        return self._signatures()[1]

    @_locked
    def commit_rules(self) -> CommitRules:
        return self._rules()

    def _rules(self) -> CommitRules:
        """Asked of git itself once: it alone resolves GIT_*_NAME/EMAIL, includeIf and core.hooksPath."""
        if self._commit_rules is None:
            author = self._git(["var", "GIT_AUTHOR_IDENT"])
            committer = self._git(["var", "GIT_COMMITTER_IDENT"])
            sign = self._git(["config", "--type=bool", "--get", "commit.gpgsign"])
            hooks = self._git(["rev-parse", "--git-path", "hooks"])
            hooks_dir = Path(os.fsdecode(hooks.stdout.strip())) if hooks.returncode == 0 else self.git_dir / "hooks"
            self._commit_rules = CommitRules(
                author=_parse_ident(author.stdout.decode(errors="replace").strip()) if author.returncode == 0 else None,
                committer=_parse_ident(committer.stdout.decode(errors="replace").strip()) if committer.returncode == 0 else None,
                sign=sign.returncode == 0 and sign.stdout.strip() == b"true",
                hooks_dir=hooks_dir if hooks_dir.is_absolute() else (self.root / hooks_dir),
            )
        return self._commit_rules

    def _signatures(self) -> tuple[pygit2.Signature, pygit2.Signature]:
        rules = self._rules()
        author = rules.author or rules.committer or IDENTITY_FALLBACK
        committer = rules.committer or rules.author or IDENTITY_FALLBACK
        return pygit2.Signature(*author), pygit2.Signature(*committer)

    def _signature(self) -> pygit2.Signature:
        return self._signatures()[1]

    def _identity_env(self) -> dict[str, str]:
        """The environment for a git that commits: IDENTITY_FALLBACK only where git knows nobody."""
        env = _git_env()
        rules = self._rules()
        if rules.author is None:
            env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = rules.committer or IDENTITY_FALLBACK
        if rules.committer is None:
            env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = rules.author or IDENTITY_FALLBACK
        return env

    def _git(
        self, args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git and return what it did; the caller judges the exit code."""
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.root,
            env=env if env is not None else _git_env(),
            capture_output=True,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def _create_merge_commit(
        self, tree_id: pygit2.Oid, parent_ids: list[pygit2.Oid], message: str, branch: str, base: str
    ) -> pygit2.Oid:
        """Write the --no-ff merge commit object as `git merge --no-ff` would (no ref moves).

        Its hooks run (pre-merge-commit against an index holding the merge, then prepare-commit-msg
        and commit-msg, which may rewrite the message) and commit.gpgsign is honoured through
        `git commit-tree -S`. Without hooks or signing libgit2 writes it directly (no process to start).
        """
        rules = self._rules()
        hooks = {name: rules.hook(name) for name in _MERGE_HOOKS}
        if not rules.sign and not any(hooks.values()):
            author, committer = self._signatures()
            return self._repo.create_commit(None, author, committer, message, tree_id, parent_ids)
        scratch = self.git_dir / "tuiorch"
        scratch.mkdir(parents=True, exist_ok=True)
        tag = f"{os.getpid()}-{threading.get_ident()}"
        msg_file = scratch / f"MERGE_MSG-{tag}"
        index_file = scratch / f"merge-index-{tag}"
        env = self._identity_env()
        try:
            msg_file.write_text(message, encoding="utf-8")
            if hooks["pre-merge-commit"] is not None:
                # The hook inspects the merge through the index, as under `git merge`; the user's is untouched.
                hook_env = {**env, "GIT_INDEX_FILE": str(index_file)}
                self._git(["read-tree", str(tree_id)], env=hook_env)
                self._run_hook(hooks["pre-merge-commit"], [], hook_env, branch, base)
            if hooks["prepare-commit-msg"] is not None:
                self._run_hook(hooks["prepare-commit-msg"], [str(msg_file), "merge"], env, branch, base)
            if hooks["commit-msg"] is not None:
                self._run_hook(hooks["commit-msg"], [str(msg_file)], env, branch, base)
            args = ["commit-tree", *(["-S"] if rules.sign else []), str(tree_id)]
            for parent in parent_ids:
                args += ["-p", str(parent)]
            done = self._git([*args, "-F", str(msg_file)], env=env)
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).decode(errors="replace").strip()
                raise GitError(
                    f"git could not write the merge commit of {branch} into {base}"
                    f"{' (commit.gpgsign = true: signing failed)' if rules.sign else ''}: {detail}"
                )
            return pygit2.Oid(hex=done.stdout.decode().strip())
        finally:
            msg_file.unlink(missing_ok=True)
            index_file.unlink(missing_ok=True)

    def _run_hook(self, hook: Path, args: list[str], env: dict[str, str], branch: str, base: str) -> None:
        done = subprocess.run(
            [str(hook), *args], cwd=self.root, env=env, capture_output=True, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise GitError(
                f"the {hook.name} hook rejected the merge of {branch} into {base} (exit {done.returncode})"
                + (f": {output}" if output else "")
            )

    @_locked
    def local_branches(self) -> list[str]:
        return sorted(self._repo.branches.local)

    @_locked
    def operations_in_progress(self, base: str) -> list[tuple[Path, str, str]]:
        """(working tree, operation, how to end it) for each checkout of `base` and the primary one
        that git has in mid-operation."""
        found: list[tuple[Path, str, str]] = []
        for workdir in dict.fromkeys([self.root, *self._checkouts(base)]):
            operation = _operation_in_progress(workdir)
            if operation is not None:
                found.append((workdir, *operation))
        return found

    @_locked
    def has_new_commits(self, branch: str, since: str) -> bool:
        """True if `branch` holds commits that `since` does not."""
        tip = self._commit_of(branch).id
        try:
            since_id = pygit2.Oid(hex=since)
        except ValueError:
            raise GitError(f"{since!r} is not a commit sha") from None
        return not self._contains(since_id, tip)

    @_locked
    def is_merged(self, branch: str, base: str) -> bool:
        return self._contains(self._commit_of(base).id, self._commit_of(branch).id)

    # ------------------------------------------------------------- worktrees

    def _worktree_admin(self, path: Path) -> Path | None:
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

    def _clear_dead_agent_lock(self, path: Path) -> None:
        """Remove an index.lock left in one of our worktrees by a killed agent.

        Called only when no agent runs there (its whole process group is gone), so the lock is stale.
        """
        admin = self._worktree_admin(path)
        if admin is not None:
            (admin / "index.lock").unlink(missing_ok=True)

    def _registered_admin(self, path: Path) -> Path | None:
        """The admin dir registered for `path`, even when the directory itself is gone."""
        target = path.resolve()
        worktrees = self.git_dir / "worktrees"
        if not worktrees.is_dir():
            return None
        for admin in worktrees.iterdir():
            gitdir_file = admin / "gitdir"
            if not gitdir_file.is_file():
                continue
            registered = Path(gitdir_file.read_text().strip())
            if not registered.is_absolute():
                registered = admin / registered
            if registered.parent.resolve() == target:
                return admin
        return None

    def _prune(self) -> None:
        # `git worktree prune` drops admin dirs of vanished worktrees and empty leftovers (facts §2:
        # leftover admin dirs make libgit2 think brand-new branches are checked out).
        if self._creating:
            return  # another slot's `git worktree add` is under way: its admin dir is not a leftover
        worktrees = self.git_dir / "worktrees"
        if worktrees.is_dir():
            for admin in worktrees.iterdir():
                # `locked` marks a worktree git is still creating (another slot's `worktree add`).
                if admin.is_dir() and not (admin / "gitdir").exists() and not (admin / "locked").exists():
                    shutil.rmtree(admin, ignore_errors=True)
        self._run_git(["worktree", "prune"])

    def _run_git(self, args: list[str], env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=env if env is not None else _git_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise GitError(f"git {args[0]} {args[1] if len(args) > 1 else ''} failed: {detail}".strip())
        return done.stdout

    def _checkouts(self, branch: str) -> list[Path]:
        """Working trees (primary and linked) whose HEAD is attached to `branch`."""
        refname = f"refs/heads/{branch}"
        found: list[Path] = []
        if not self._repo.is_bare and self._repo.workdir:
            head = self._repo.lookup_reference("HEAD")
            if head.type == ReferenceType.SYMBOLIC and head.target == refname:
                found.append(Path(self._repo.workdir).resolve())
        worktrees = self.git_dir / "worktrees"
        if worktrees.is_dir():
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

    def _exclude_if_inside(self, path: Path) -> None:
        """Keep a worktree nested in the primary working tree from showing as untracked (facts §3b)."""
        if self._repo.is_bare or not self._repo.workdir:
            return
        primary = Path(self._repo.workdir).resolve()
        try:
            rel = path.resolve().relative_to(primary)
        except ValueError:
            return
        exclude = self.git_dir / "info" / "exclude"
        line = _exclude_pattern(rel.as_posix())
        text = exclude.read_text() if exclude.exists() else ""
        if line in text.splitlines():
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as out:
            out.write(("\n" if text and not text.endswith("\n") else "") + line + "\n")

    def prepare_worktree(
        self,
        path: Path,
        branch: str,
        base: str,
        keep: Sequence[str] = (),
        *,
        keep_commits: bool = False,
        scratch: Sequence[str] = (),
    ) -> str:
        """Make `branch` at base's tip and a clean worktree at `path` on it; return the base sha.

        keep_commits: a branch that already holds commits not in base (an earlier attempt's work,
        a conflict being resolved) is checked out as it is instead of refused.
        scratch: an agent CLI's own files (never work) that a reused slot may hold.
        """
        path = Path(path).absolute()
        with self._lock:
            try:
                base_commit = self._commit_of(base)
                admin = self._worktree_admin(path) if path.exists() else None
                self._point_branch(
                    branch, base, base_commit, reuse_path=path.resolve() if admin else None, keep_commits=keep_commits
                )
                if admin is not None:
                    self._reuse_worktree(path, branch, keep, scratch)
                    self._exclude_if_inside(path)
                    return str(base_commit.id)
                if path.exists() and (not path.is_dir() or any(path.iterdir())):
                    raise GitError(
                        f"{path} already exists and is not a tuiorch worktree of {self.root}; move it away"
                    )
                self._prune()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._exclude_if_inside(path)
                self._creating.add(path)
            except pygit2.GitError as exc:
                raise GitError(f"git: {exc}") from exc
        # A full checkout takes seconds on a big repo: git does it outside our lock, so merges and the
        # other slots go on meanwhile (nothing else uses this new path or branch, and no prune runs
        # while a worktree is being made).
        try:
            # `git worktree add` reads every other worktree's admin dir, so two at once can trip over a
            # half-made one: registering is serialised (fast with --no-checkout), the checkout is not.
            env = with_task_worktree_config(_git_env())
            with self._add_lock:
                self._run_git(["worktree", "add", "--quiet", "--no-checkout", "--", str(path), branch], env)
            _drop_inherited_sparse_checkout(path)
            # Parallel checkout: writing thousands of small files is disk-bound, not CPU-bound.
            self._run_git(["-C", str(path), "-c", "checkout.workers=8", "reset", "--hard", "--quiet"], env)
            self._update_submodules(path)
        finally:
            with self._lock:
                self._creating.discard(path)
        return str(base_commit.id)

    def _point_branch(
        self,
        branch: str,
        base: str,
        base_commit: pygit2.Commit,
        reuse_path: Path | None,
        keep_commits: bool = False,
    ) -> None:
        """Create `branch` at base's tip, or move a stale one there; refuse to drop unmerged commits."""
        refname = f"refs/heads/{branch}"
        existing = self._repo.references.get(refname)
        if existing is None:
            clash = branch_clash(branch, list(self._repo.branches.local))
            if clash is not None:
                raise GitError(_clash_message(branch, clash))
            try:
                self._repo.create_branch(branch, base_commit)
            except ValueError as exc:
                raise GitError(f"'{branch}' is not a valid branch name") from exc
            return
        current = existing.peel(pygit2.Commit).id
        has_own_commits = not self._contains(base_commit.id, current)
        if has_own_commits and keep_commits:
            elsewhere = [p for p in self._checkouts(branch) if p != reuse_path]
            if elsewhere:
                raise GitError(f"branch '{branch}' is checked out in {elsewhere[0]}; release it first")
            return
        if has_own_commits:
            raise GitError(
                f"branch '{branch}' already exists with commits not in {base}; "
                f"run `tuiorch clean --force` or delete it (git branch -D {branch})"
            )
        elsewhere = [p for p in self._checkouts(branch) if p != reuse_path]
        if elsewhere:
            raise GitError(f"branch '{branch}' is checked out in {elsewhere[0]}; release it first")
        if current != base_commit.id:
            existing.set_target(base_commit.id, f"tuiorch: reset {branch} to {base}")

    def _reuse_worktree(self, path: Path, branch: str, keep: Sequence[str], scratch: Sequence[str]) -> None:
        """Warm slot reuse: switch the worktree to `branch`, writing only files that differ.

        Uncommitted work found there (left when tuiorch was killed while an agent or a commit was
        under way) is first saved as a commit under refs/tuiorch/rescued/; if even that fails, reuse
        is refused (UncommittedWork) rather than overwrite it.
        """
        self._clear_dead_agent_lock(path)
        wt_repo = pygit2.Repository(str(path))
        kept = _normalize_keep(keep)
        # No index yet: a checkout a killed run never finished (agents start only once it has), so
        # whatever files it left are git's, not an agent's work.
        half_made = not (Path(wt_repo.path) / "index").exists()
        if wt_repo.state() == RepositoryState.NONE and not half_made:
            # A file that already holds the branch's version is no one's work either: a switch to the
            # branch that a kill interrupted leaves such files, and the checkout writes the same.
            target = self._commit_of(branch).tree
            dirty = sorted(
                rel
                for rel, flags in wt_repo.status(untracked_files="all").items()
                if flags != FileStatus.IGNORED
                and not any(paths_collide(k, rel) for k in kept)
                and not _is_scratch(rel, scratch)
                and not _file_matches(path / rel, _tree_entry(target, rel))
            )
            if dirty:
                try:
                    self._rescued.append(self._rescue_uncommitted(path, wt_repo))
                except (GitError, pygit2.GitError, OSError) as exc:
                    raise UncommittedWork(
                        f"{path} holds uncommitted work ({', '.join(dirty[:5])}"
                        f"{', ...' if len(dirty) > 5 else ''}) that could not be saved ({exc}); "
                        "commit or remove it there, or move the folder away, then retry",
                        path,
                    ) from exc
        wt_repo.state_cleanup()  # drop MERGE_HEAD etc. left by an abandoned manual merge
        wt_repo.checkout(f"refs/heads/{branch}", strategy=CheckoutStrategy.FORCE)
        _clean_untracked(path, wt_repo.index, kept)
        self._update_submodules(path)

    def _rescue_uncommitted(self, path: Path, wt_repo: pygit2.Repository) -> str:
        """Commit everything uncommitted in `path` on top of its HEAD under a new rescue ref; its name.

        Plumbing on a copy of the index: the worktree, its index and its branch stay as they are.
        """
        index_copy = Path(wt_repo.path) / "tuiorch-rescue-index"
        shutil.copyfile(Path(wt_repo.path) / "index", index_copy)
        env = with_task_worktree_config(_git_env())
        env["GIT_INDEX_FILE"] = str(index_copy)
        try:
            self._run_git(["-C", str(path), "add", "-A"], env)
            tree = self._run_git(["-C", str(path), "write-tree"], env).strip()
        finally:
            index_copy.unlink(missing_ok=True)
        signature = pygit2.Signature(*IDENTITY_FALLBACK)
        message = f"tuiorch: uncommitted work found in {path} before reusing it\n"
        commit = self._repo.create_commit(
            None, signature, signature, message, pygit2.Oid(hex=tree), [wt_repo.head.target]
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name, n = f"refs/tuiorch/rescued/{path.name}-{stamp}", 1
        while name in self._repo.references:
            n += 1
            name = f"refs/tuiorch/rescued/{path.name}-{stamp}-{n}"
        self._repo.references.create(name, commit)
        return name

    def take_rescued(self) -> list[str]:
        """Rescue refs made since the last call (for the caller to tell the user about)."""
        with self._lock:
            rescued, self._rescued = self._rescued, []
        return rescued

    def _update_submodules(self, path: Path) -> None:
        """Populate the worktree's submodules at the commits its tree records, as a fresh clone would."""
        if not (path / ".gitmodules").is_file():
            return
        self._run_git(
            ["-C", str(path), "submodule", "update", "--init", "--recursive", "--quiet"],
            with_task_worktree_config(_git_env()),
        )

    @_locked
    def checkout_detached(self, path: Path, commit: str, keep: Sequence[str] = ()) -> None:
        """Make `path` a tuiorch scratch worktree holding exactly `commit` (detached HEAD, no branch).

        For running the merge check on the exact merge result. An existing tuiorch worktree at `path`
        is reused: forced to `commit` (tracked files the last check changed are restored) and
        cleaned of untracked and ignored files except `keep` (e.g. ".venv"). Anything else at `path`
        is refused. No branch moves.
        """
        path = Path(path).absolute()
        try:
            target = self._repo[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.InvalidSpecError):
            raise GitError(f"{commit!r} is not a commit of {self.root}") from None
        admin = self._worktree_admin(path) if path.exists() else None
        if admin is None:
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise GitError(
                    f"{path} already exists and is not a tuiorch worktree of {self.root}; move it away"
                )
            self._prune()
            path.parent.mkdir(parents=True, exist_ok=True)
            # The check runs on the whole merge result: no sparse cone, a plain index, submodules present.
            env = with_task_worktree_config(_git_env())
            self._run_git(["worktree", "add", "--quiet", "--detach", "--", str(path), str(target.id)], env)
            _drop_inherited_sparse_checkout(path)
            self._update_submodules(path)
        else:
            wt_repo = pygit2.Repository(str(path))
            wt_repo.state_cleanup()
            # FORCE against the worktree's current HEAD: writes only what differs, drops what the
            # new commit lacks, and overwrites whatever the previous check left modified.
            wt_repo.checkout_tree(wt_repo[target.tree_id], strategy=CheckoutStrategy.FORCE)
            wt_repo.set_head(target.id)
            _clean_untracked(path, wt_repo.index, _normalize_keep(keep))
        self._exclude_if_inside(path)

    @_locked
    def release_worktree(self, path: Path) -> None:
        """Detach HEAD (at its commit) in the worktree at `path` so its branch can be deleted."""
        path = Path(path).absolute()
        if not path.exists():
            return
        if self._worktree_admin(path) is None:
            raise GitError(f"{path} is not a tuiorch worktree of {self.root}")
        wt_repo = pygit2.Repository(str(path))
        wt_repo.set_head(wt_repo.head.target)

    def remove_worktree(self, path: Path) -> None:
        """Delete the worktree directory and its admin dir; fine if the directory is already gone."""
        path = Path(path).absolute()
        doomed: Path | None = None
        with self._lock:
            admin = self._worktree_admin(path) if path.exists() else self._registered_admin(path)
            if path.exists():
                if admin is None:
                    # Never rmtree a directory we cannot prove is one of this repository's worktrees.
                    raise GitError(f"{path} is not a tuiorch worktree of {self.root}; not removing it")
                # Renamed away under the lock (instant), deleted outside it: removing a big checkout
                # takes seconds, and merges and other slots need not wait for it.
                doomed = path.with_name(f".{path.name}.removing-{os.getpid()}-{threading.get_ident()}")
                path.rename(doomed)
            if admin is not None and admin.exists():
                shutil.rmtree(admin)
        if doomed is not None:
            shutil.rmtree(doomed, ignore_errors=True)

    @_locked
    def delete_branch(self, branch: str, *, force: bool = False, base: str = "main") -> None:
        """Delete `branch`; refuses if it holds commits not in `base` (unless force) or is checked out."""
        ref = self._repo.references.get(f"refs/heads/{branch}")
        if ref is None:
            return
        where = self._checkouts(branch)
        if where:
            raise GitError(f"branch '{branch}' is checked out in {where[0]}; release that worktree first")
        tip = ref.peel(pygit2.Commit).id
        if not force and not self._contains(self._commit_of(base).id, tip):
            raise GitError(f"branch '{branch}' has commits not in {base}; use --force to delete it anyway")
        ref.delete()

    @_locked
    def commits_since(self, base: str, since: str) -> list[tuple[str, str]]:
        """(short sha, subject) of base's first-parent commits that `since` does not hold, oldest first.

        Reachability rather than "the commits after `since`": when the user amends or rebases base
        during the run, `since` leaves base's history, and the rewritten commits and every merge since
        still count.
        """
        try:
            stop = pygit2.Oid(hex=since)
            walker = self._repo.walk(self._commit_of(base).id, pygit2.enums.SortMode.TOPOLOGICAL)
            walker.simplify_first_parent()
            walker.hide(stop)
        except (ValueError, KeyError, pygit2.GitError):
            return []  # `since` is not a commit of this repository (any more)
        return [(str(c.id)[:7], c.message.split("\n", 1)[0]) for c in walker][::-1]

    def files_with_markers(self, worktree: Path, paths: Sequence[str]) -> list[str]:
        """Those of `paths` whose file in `worktree` still holds a conflict marker line."""
        marked = []
        for path in paths:
            target = Path(worktree) / path
            with contextlib.suppress(OSError):
                if target.is_file() and _has_markers(target.read_bytes()):
                    marked.append(path)
        return marked

    @_locked
    def find_merge_of(self, tip: str, base: str, limit: int = 10_000) -> str | None:
        """The first-parent commit of base that merged `tip` in (its second parent), if any."""
        wanted = pygit2.Oid(hex=tip)
        commit: pygit2.Commit | None = self._commit_of(base)
        for _ in range(limit):
            if commit is None:
                return None
            if len(commit.parent_ids) > 1 and commit.parent_ids[1] == wanted:
                return str(commit.id)
            commit = commit.parents[0] if commit.parents else None
        return None

    @_locked
    def branch_tip(self, branch: str) -> str | None:
        """The branch's sha, or None when there is no such branch."""
        ref = self._repo.references.get(f"refs/heads/{branch}")
        return str(ref.peel(pygit2.Commit).id) if ref is not None else None

    @_locked
    def task_branches(self, template: str) -> list[str]:
        """Local branches that match the task branch template (e.g. task-{id})."""
        prefix, _, suffix = template.partition("{id}")
        return sorted(
            name
            for name in self._repo.branches.local
            if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)
        )

    def clean(self, base: str, branch_template: str, worktree_dir: Path, *, force: bool = False) -> list[str]:
        """Remove tuiorch's worktrees under worktree_dir and task branches; return what was done, a line each.

        A branch with commits not in base is kept (and named) unless force; then the dropped commits are listed.
        """
        report: list[str] = []
        kept_worktrees: list[Path] = []
        if worktree_dir.is_dir():
            for child in sorted(worktree_dir.iterdir()):
                if child.is_dir() and child.name.startswith(".") and ".removing-" in child.name:
                    # A removal that a crash interrupted (see remove_worktree).
                    shutil.rmtree(child, ignore_errors=True)
                    report.append(f"removed leftover {child}")
                elif child.is_dir() and self._worktree_admin_locked(child) is not None:
                    dirty = self._uncommitted_in(child)
                    if dirty and not force:
                        report.append(
                            f"kept worktree {child}: uncommitted work ({', '.join(dirty[:3])}"
                            f"{', ...' if len(dirty) > 3 else ''}); pass --force to delete it anyway"
                        )
                        kept_worktrees.append(child.resolve())
                        continue
                    self.remove_worktree(child)
                    report.append(f"removed worktree {child}" + (" with its uncommitted work" if dirty else ""))
        self.prune()
        base_tip = self.tip(base)
        held = set(kept_worktrees)
        for branch in self.task_branches(branch_template):
            where = [w for w in self._checkouts_locked(branch) if w in held]
            if where:
                report.append(f"kept {branch}: checked out in the kept worktree {where[0]}")
                continue
            if self.is_merged(branch, base):
                self.delete_branch(branch, base=base)
                report.append(f"deleted merged branch {branch}")
                continue
            dropped = self._unmerged_commits(branch, base_tip)
            if not force:
                report.append(
                    f"kept {branch}: {len(dropped)} commit(s) not in {base} (pass --force to delete it)"
                )
                continue
            self.delete_branch(branch, force=True, base=base)
            report.append(f"deleted {branch} with {len(dropped)} commit(s) not in {base}:")
            report.extend(f"  {sha} {subject}" for sha, subject in dropped)
        if not report:
            report.append("nothing to clean")
        return report

    @_locked
    def _uncommitted_in(self, path: Path) -> list[str]:
        """Paths holding uncommitted work in the worktree at `path` (ignored files are not work)."""
        try:
            changes = pygit2.Repository(str(path)).status(untracked_files="normal")
        except pygit2.GitError:
            # An index libgit2 cannot read (split or sparse) may hold anything: ask git.
            done = self._git(["status", "--porcelain", "-z"], cwd=path)
            return [os.fsdecode(e[3:]) for e in done.stdout.split(b"\0") if len(e) > 3] if done.returncode == 0 else ["?"]
        return sorted(rel for rel, flags in changes.items() if flags != FileStatus.IGNORED)

    @_locked
    def move_worktree(self, path: Path, to: Path) -> bool:
        """`git worktree move`; False when git refuses (e.g. a worktree with submodules stays put)."""
        to.parent.mkdir(parents=True, exist_ok=True)
        return self._git(["worktree", "move", str(path), str(to)]).returncode == 0

    @_locked
    def _checkouts_locked(self, branch: str) -> list[Path]:
        return self._checkouts(branch)

    def _worktree_admin_locked(self, path: Path) -> Path | None:
        with self._lock:
            return self._worktree_admin(path)

    @_locked
    def _unmerged_commits(self, branch: str, base_tip: str) -> list[tuple[str, str]]:
        walker = self._repo.walk(self._commit_of(branch).id, pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base_tip))
        return [(str(c.id)[:7], c.message.split("\n", 1)[0]) for c in walker]

    @_locked
    def prune(self) -> None:
        """Drop admin dirs of worktrees whose directory is gone, and empty leftover admin dirs."""
        self._prune()

    # ---------------------------------------------------------------- commits

    @_locked
    def commit_leftovers(
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
        self._clear_dead_agent_lock(worktree)
        wt_repo = pygit2.Repository(str(worktree))
        kept = f"its work is kept in {worktree}"
        # `git add -A` would stage conflict markers as content and `git commit` conclude the agent's
        # half-done merge (or cherry-pick) with them: the agent's own operation is not finished for it.
        operation = _operation_in_progress(worktree)
        conflicts = _conflicts_of(wt_repo)
        if operation is not None or conflicts:
            what, finish = operation or ("unresolved conflicts", "resolve them or git checkout --ours/--theirs")
            detail = f" (conflicts in {', '.join(conflicts)})" if conflicts else ""
            raise UncommittedWork(
                f"the agent left {what} in progress in its worktree{detail}; tuiorch does not commit it "
                f"({finish} there); {kept}",
                worktree,
            )
        if branch is not None:
            head = None if wt_repo.head_is_detached else wt_repo.head.shorthand
            if head != branch:
                # A named branch keeps its commits; a detached HEAD's, and anything uncommitted, live
                # only in the worktree, which is then kept.
                where = f"branch {head}" if head else "a detached HEAD"
                dirty = any(flags != FileStatus.IGNORED for flags in wt_repo.status(untracked_files="all").values())
                if head is None or dirty:
                    raise UncommittedWork(f"the agent left {branch} for {where}; {kept}", worktree)
                raise GitError(f"the agent left {branch} for {where} in {worktree}; its work there is kept")
        env = with_task_worktree_config(self._identity_env())
        try:
            # libgit2's status names what changed, so git only looks at those paths (a full `git add -A`
            # rescans the whole tree, slow on a big checkout); a nested repository shows as "dir/".
            status = wt_repo.status(untracked_files="all")
            changed: list[str] | None = [p for p, flags in status.items() if flags != FileStatus.IGNORED]
        except pygit2.GitError:
            changed = None  # an index libgit2 cannot read: git looks at everything
        if changed is None:
            listed = self._git(["ls-files", "-z", "--others", "--exclude-standard"], cwd=worktree, env=env)
            if listed.returncode != 0:
                raise UncommittedWork(f"git ls-files failed in {worktree}: {_output(listed)}; {kept}", worktree)
            untracked = [os.fsdecode(p) for p in listed.stdout.split(b"\0") if p]
        else:
            if not changed:
                return None  # nothing to commit: no git process needed (most agents commit their work)
            untracked = [p for p in changed if status[p] & FileStatus.WT_NEW]
        left_out = {p for p in untracked if _is_scratch(p.rstrip("/"), scratch)}
        nested = [p for p in untracked if p.endswith("/") and p not in left_out]
        if nested:
            raise UncommittedWork(
                f"the agent made a git repository inside its worktree ({', '.join(nested)}); tuiorch cannot "
                f"commit it. Remove its .git or make it a submodule; {kept}",
                worktree,
            )
        if changed is None:
            pathspecs = ["."] + [f":(exclude,literal){p}" for p in sorted(left_out)]
        else:
            pathspecs = [f":(literal){p}" for p in changed if p not in left_out]
            if not pathspecs:
                return None
        added = self._git(
            ["add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
            cwd=worktree,
            env=env,
            input="\0".join(pathspecs).encode(errors="surrogateescape"),
        )
        if added.returncode != 0:
            raise UncommittedWork(f"git add -A failed in {worktree}: {_output(added)}; {kept}", worktree)
        done = self._git(["commit", "--quiet", "--no-edit", "-F", "-"], cwd=worktree, env=env, input=message.encode())
        if done.returncode != 0:
            staged = self._git(["diff", "--cached", "--quiet", "--ignore-submodules=dirty"], cwd=worktree, env=env)
            if staged.returncode == 0:
                return None  # git's filters (e.g. Git LFS) found nothing really changed
            raise UncommittedWork(f"git commit refused the agent's leftovers: {_output(done)}; {kept}", worktree)
        return str(pygit2.Repository(str(worktree)).head.target)

    # ------------------------------------------------------------------ merge

    @_locked
    def test_merge(self, branch: str, base: str) -> tuple[str, ...]:
        """Paths that would conflict if `branch` were merged into `base` now (in memory only)."""
        ours, theirs = self._commit_of(base).id, self._commit_of(branch).id
        if self._contains(ours, theirs):
            return ()
        merged = self._repo.merge_commits(ours, theirs)
        if not merged.conflicts:
            return ()
        return tuple(sorted(_entry_path(entries) for entries in merged.conflicts))

    @_locked
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
        This is prepare_merge + land_merge with the recompute loop and no check in between.
        `_before_cas` is a test hook run after computing and before locking (to simulate a race).
        """
        for _attempt in range(_MERGE_ATTEMPTS):
            prepared = self._prepare(branch, base, message)
            if isinstance(prepared, MergeOutcome):
                return prepared
            if _before_cas is not None:
                _before_cas()
            outcome = self._land(prepared)
            if outcome is None:
                time.sleep(_LOCK_RETRY_DELAY)  # someone else holds the ref lock; try again shortly
                continue
            if outcome.status == "moved":
                continue
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

    @_locked
    def prepare_merge(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        """Compute the --no-ff merge against base's tip and write its commit object; no ref moves.

        Returns a MergeOutcome instead when there is nothing to land: "already" (base contains the
        branch) or "conflict" (with paths and kinds, exactly as merge reports them).
        """
        return self._prepare(branch, base, message)

    @_locked
    def land_merge(self, prepared: PreparedMerge, message: str | None = None) -> MergeOutcome:
        """Move base to exactly `prepared.commit` if base still is `prepared.base_tip`.

        Same safety as merge (ref lock, blocked on the user's dirty files, SAFE update of checked-out
        trees). "moved": base changed since prepare_merge; nothing was changed, recompute (and
        re-check). "blocked": retry later with the same PreparedMerge. `message` (if it differs)
        lands a commit with the same tree and parents but that message: the checked content is the
        same, only the commit id changes.
        """
        self._verify_prepared(prepared)
        if message is not None and message != prepared.message:
            prepared = self._reworded(prepared, message)
        for _attempt in range(_MERGE_ATTEMPTS):
            outcome = self._land(prepared)
            if outcome is not None:
                return outcome
            time.sleep(_LOCK_RETRY_DELAY)
        return MergeOutcome(
            "blocked",
            None,
            prepared.paths,
            message=f"{prepared.base} is locked by another git process (refs/heads/{prepared.base}.lock); tuiorch retries",
        )

    def _prepare(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        old_tip = self._commit_of(base)
        branch_tip = self._commit_of(branch)
        if self._contains(old_tip.id, branch_tip.id):
            return MergeOutcome("already", str(old_tip.id), message=f"{branch} is already merged into {base}")
        merged = self._repo.merge_commits(old_tip.id, branch_tip.id)
        if merged.conflicts:
            kinds = {
                _entry_path(e): _conflict_kind_in(_entry_path(e), *e, old_tip.tree, branch_tip.tree)
                for e in merged.conflicts
            }
            paths = tuple(sorted(kinds))
            return MergeOutcome(
                "conflict", None, paths, kinds, f"{branch} conflicts with {base} in {', '.join(paths)}"
            )
        tree_id = merged.write_tree(self._repo)
        new_tree = self._repo[tree_id]
        assert isinstance(new_tree, pygit2.Tree)
        commit_id = self._create_merge_commit(tree_id, [old_tip.id, branch_tip.id], message, branch, base)
        return PreparedMerge(
            branch=branch,
            base=base,
            commit=str(commit_id),
            base_tip=str(old_tip.id),
            branch_tip=str(branch_tip.id),
            tree=str(tree_id),
            paths=tuple(sorted(_changed_paths(old_tip.tree, new_tree))),
            message=message,
        )

    def _verify_prepared(self, prepared: PreparedMerge) -> None:
        """Refuse a PreparedMerge whose commit is not the two-parent merge it claims to be."""
        try:
            commit = self._repo[pygit2.Oid(hex=prepared.commit)]
        except (KeyError, ValueError):
            raise GitError(f"prepared merge commit {prepared.commit} does not exist") from None
        parent_ids = [str(p) for p in commit.parent_ids] if isinstance(commit, pygit2.Commit) else []
        if parent_ids != [prepared.base_tip, prepared.branch_tip] or str(commit.tree_id) != prepared.tree:
            raise GitError(
                f"{prepared.commit} is not the prepared merge of {prepared.branch} into {prepared.base}"
            )

    def _reworded(self, prepared: PreparedMerge, message: str) -> PreparedMerge:
        parent_ids = [pygit2.Oid(hex=prepared.base_tip), pygit2.Oid(hex=prepared.branch_tip)]
        commit_id = self._create_merge_commit(
            pygit2.Oid(hex=prepared.tree), parent_ids, message, prepared.branch, prepared.base
        )
        return replace(prepared, commit=str(commit_id), message=message)

    def _land(self, prepared: PreparedMerge) -> MergeOutcome | None:
        """Lock base's ref, compare, update checked-out trees, move the ref. None: a lock was busy."""
        base = prepared.base
        refname = f"refs/heads/{base}"
        changed = set(prepared.paths)
        updates: list[IndexUpdate] = []
        try:
            # Leaving this block by an exception drops the transaction uncommitted (lock released,
            # ref untouched); leaving it normally commits the new target and then releases the lock.
            with self._repo.transaction() as txn:
                try:
                    txn.lock_ref(refname)
                except pygit2.GitError:
                    raise _LockBusy from None
                current = str(self._commit_of(base).id)
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
                checkouts = self._base_checkouts(refname)
                for checkout in checkouts:
                    update = IndexUpdate(checkout)
                    updates.append(update)
                    self._update_checkout(update, prepared, refname, changed)
                bystander = self._primary_checkout()
                if bystander is not None and bystander not in checkouts:
                    # Not updated, only held: a `git switch` to base there cannot start from base's old tip.
                    update = IndexUpdate(bystander)
                    with contextlib.suppress(Busy):
                        update.lock()
                        updates.append(update)
                for update in updates:
                    update.stage()
                # Reflog signature None: pygit2 1.21 cannot pass a Signature here (TypeError).
                txn.set_target(
                    refname, pygit2.Oid(hex=prepared.commit), None, f"tuiorch: merge {prepared.branch_tip} (--no-ff)"
                )
        except (_LockBusy, Busy):
            for update in updates:
                update.rollback()
            return None
        except _Refused as refused:
            for update in updates:
                update.rollback()
            return refused.outcome
        except (pygit2.GitError, OSError) as exc:
            for update in updates:
                update.rollback()
            where = ", ".join(str(u.checkout.workdir) for u in updates) or refname
            return MergeOutcome(
                "blocked",
                None,
                tuple(sorted(changed)),
                message=f"could not update {base} in {where}: {exc} (tuiorch retries)",
            )
        if updates:
            # git switch reads where the branches point before it takes the index lock: one that read
            # base's old tip before the ref moved must meet the lock and stop, instead of carrying the
            # merge's changes to the other branch or checking out the old tip. So the lock is held
            # until every git command already running in those trees has ended (or a short while).
            primary = self._primary_checkout()
            others = [c.workdir for c in all_checkouts(self.git_dir, primary.workdir if primary else None)]
            running = git_processes_in((u.checkout.workdir for u in updates), exclude=others)
            if running is None:
                time.sleep(_SWITCH_GRACE)
            else:
                wait_for_exit(running, _SWITCH_GRACE_MAX)
        for update in updates:
            if update.staged and not update.head_still(refname):
                # A `git switch` that wrote its index just before our lock moved HEAD only now: that
                # index is the other branch's, so it stays as it was and our files go back.
                update.rollback()
            else:
                update.commit()
        return MergeOutcome("merged", prepared.commit, message=f"merged {prepared.branch_tip} into {base}")

    def _primary_checkout(self) -> Checkout | None:
        if self._repo.is_bare or not self._repo.workdir:
            return None
        return Checkout(Path(self._repo.workdir).resolve(), self.git_dir)

    def _base_checkouts(self, refname: str) -> list[Checkout]:
        primary = self._primary_checkout()
        return find_checkouts(self.git_dir, primary.workdir if primary else None, refname)

    def _update_checkout(
        self, update: IndexUpdate, prepared: PreparedMerge, refname: str, changed: set[str]
    ) -> None:
        """Take the checkout's index lock, check it still is on base and idle, and update it (git's way).

        Raises _Refused (the task waits, with the reason), Busy (another git holds the index or is
        moving HEAD: retried shortly) or leaves `update` applied and locked for stage/commit.
        """
        base, workdir, gitdir = prepared.base, update.checkout.workdir, update.checkout.gitdir
        try:
            update.lock(timeout=_INDEX_LOCK_WAIT)
        except Busy:
            raise _Refused(
                MergeOutcome(
                    "blocked",
                    None,
                    message=(
                        f"{base} in {workdir} is busy (another git process holds its index); tuiorch retries. "
                        f"If no git process is running, delete {gitdir / 'index.lock'}"
                    ),
                )
            ) from None
        # Read again under git's index lock: from here no git command can switch this tree's branch.
        operation = operation_in_progress(gitdir)
        if operation is not None:
            what, finish = operation
            raise _Refused(
                MergeOutcome(
                    "blocked",
                    None,
                    message=(
                        f"{base} in {workdir} is in the middle of a {what}; {base} stays where it is until "
                        f"you finish it ({finish}); tuiorch retries"
                    ),
                )
            )
        if not update.head_still(refname):
            raise Busy(f"{workdir} left {base}")  # switched away just now: look again
        new_tree = self._repo[pygit2.Oid(hex=prepared.tree)].peel(pygit2.Tree)
        try:
            update.apply(prepared.base_tip, prepared.commit, changed, functools.partial(_already, workdir, new_tree))
        except Refused as refused:
            if refused.paths:
                hits = refused.paths
                # Another working tree than the one the run started in: say which, its status is not this one's.
                where = "" if workdir == self.root else f" in {workdir}"
                hidden = "".join(
                    f"; {path} is marked {flag}, so git status does not show its change "
                    f"(git update-index --no-{flag} {path} shows it)"
                    for path, flag in hidden_from_status(update.checkout, hits).items()
                )
                raise _Refused(
                    MergeOutcome(
                        "blocked",
                        None,
                        hits,
                        message=(
                            f"{base}{where} has uncommitted changes in {', '.join(hits)}; "
                            f"commit or stash them (tuiorch retries){hidden}"
                        ),
                    )
                ) from None
            raise _Refused(
                MergeOutcome(
                    "blocked",
                    None,
                    tuple(sorted(changed)),
                    message=f"could not update {base} in {workdir}: {refused} (tuiorch retries)",
                )
            ) from None
        # A `git switch` that wrote the index just before our lock moves HEAD only now: the files we
        # wrote went to its branch, so they are put back and the merge looks again.
        if not update.head_still(refname):
            raise Busy(f"{workdir} left {base}")

    # -------------------------------------------------------- conflict triage

    @_locked
    def conflict_sides(self, branch: str, base: str, path: str) -> tuple[str | None, str | None, str | None]:
        """(base's text, the task's text, the common ancestor's text) of `path`; None where absent.

        Binary files come back as a placeholder string naming their size.
        """
        ours, theirs = self._commit_of(base), self._commit_of(branch)
        try:
            ancestor_id = self._repo.merge_base(ours.id, theirs.id)
        except pygit2.GitError:
            ancestor_id = None
        trees = [ours.tree, theirs.tree, self._repo[ancestor_id].peel(pygit2.Tree) if ancestor_id else None]
        sides: list[str | None] = []
        for tree in trees:
            entry = _tree_entry(tree, path) if tree is not None else None
            sides.append(_blob_text(self._repo, entry.id) if isinstance(entry, pygit2.Blob) else None)
        return sides[0], sides[1], sides[2]

    @_locked
    def conflict_texts(
        self, branch: str, base: str, paths: Sequence[str]
    ) -> tuple[str, str, list[tuple[str, str, str | None, str | None, str | None, bool]]]:
        """The tips of `base` and `branch` and, per path, (path, kind, base's text, the task's text, the
        merge base's text, binary): what the conflict modal splits into hunks. None where a side has no file;
        binary (or non-UTF-8) files come back as a placeholder naming their size."""
        ours, theirs = self._commit_of(base), self._commit_of(branch)
        try:
            ancestor_id = self._repo.merge_base(ours.id, theirs.id)
        except pygit2.GitError:
            ancestor_id = None
        ancestor = self._repo[ancestor_id].peel(pygit2.Tree) if ancestor_id else None
        files = []
        for path in paths:
            texts: list[str | None] = []
            binary = False
            for tree in (ours.tree, theirs.tree, ancestor):
                entry = _tree_entry(tree, path) if tree is not None else None
                if not isinstance(entry, pygit2.Blob):
                    texts.append(None)
                    continue
                try:
                    texts.append(entry.data.decode("utf-8") if not entry.is_binary else None)
                except UnicodeDecodeError:
                    texts.append(None)
                if texts[-1] is None:
                    binary = True
                    texts[-1] = _BINARY_PLACEHOLDER.format(size=entry.size)
            kind = _conflict_kind_in(path, texts[2], texts[0], texts[1], ours.tree, theirs.tree)
            files.append((path, kind, texts[0], texts[1], texts[2], binary))
        return str(ours.id), str(theirs.id), files

    def task_diff(
        self,
        base: str,
        *,
        branch: str | None = None,
        worktree: Path | None = None,
        commit: str | None = None,
        max_lines: int = DIFF_MAX_LINES,
    ) -> TaskDiff:
        """What a task changed against its merge base with `base`.

        `commit`: a merge commit that landed (its first parent to it). `worktree`: the agent's checkout,
        uncommitted and untracked files included. `branch`: the branch's tip. Not under the instance lock,
        on a handle of its own: a review never waits behind a merge or a checkout.
        """
        try:
            return self._task_diff(base, branch, worktree, commit, max_lines)
        except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
            raise GitError(f"cannot read the changes: {exc}") from exc

    def _task_diff(
        self, base: str, branch: str | None, worktree: Path | None, commit: str | None, max_lines: int
    ) -> TaskDiff:
        repo = pygit2.Repository(str(self.git_dir))
        flags = DiffOption.NORMAL
        if commit is not None:
            merge = repo[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
            if not merge.parents:
                raise GitError(f"{commit[:7]} has no parent to compare with")
            diff = repo.diff(merge.parents[0].tree, merge.tree)
            source = f"merged as {commit[:7]}"
        else:
            base_tip = repo.references[f"refs/heads/{base}"].peel(pygit2.Commit).id
            if worktree is not None:
                wt_repo = pygit2.Repository(str(worktree))
                head = wt_repo.head.peel(pygit2.Commit).id
                since = repo.merge_base(base_tip, head) or base_tip
                flags |= DiffOption.INCLUDE_UNTRACKED | DiffOption.RECURSE_UNTRACKED_DIRS | DiffOption.SHOW_UNTRACKED_CONTENT
                diff = wt_repo[since].peel(pygit2.Tree).diff_to_workdir(flags)
                source = f"{wt_repo.head.shorthand} + uncommitted work"
            elif branch is not None:
                tip = repo.references[f"refs/heads/{branch}"].peel(pygit2.Commit)
                since = repo.merge_base(base_tip, tip.id) or base_tip
                diff = repo.diff(repo[since].peel(pygit2.Tree), tip.tree)
                source = f"branch {branch}"
            else:
                raise GitError("nothing to compare: no branch, worktree or commit")
        return TaskDiff(base=base, source=source, files=tuple(_file_diffs(diff, max_lines)))

    @_locked
    def start_manual_merge(
        self, worktree: Path, base: str = "main", message: str | None = None, commit: str | None = None
    ) -> tuple[str, ...]:
        """Merge `base` (or exactly `commit`, a tip of it) into the task branch checked out in `worktree`,
        leaving conflict markers.

        Returns the conflicted paths. The worktree is left mid-merge (MERGE_HEAD) for a human or
        an agent to edit; finish with finish_manual_merge. `message` replaces the prepared merge message
        (libgit2's "Merge branch ..." with "#Conflicts:" lines), which `git commit --no-edit` would keep.
        """
        wt_repo = pygit2.Repository(str(worktree))
        if wt_repo.head_is_detached:
            raise GitError(f"{worktree} has no task branch checked out")
        if wt_repo.state() == RepositoryState.MERGE:
            return _conflicts_of(wt_repo)
        if wt_repo.status():
            raise GitError(f"{worktree} has uncommitted changes; commit them before merging {base} in")
        wt_repo.merge(pygit2.Oid(hex=commit) if commit else wt_repo.references[f"refs/heads/{base}"])
        task_branch = wt_repo.head.shorthand
        conflicted = _conflicts_of(wt_repo)
        for rel in conflicted:
            _relabel_markers(Path(worktree) / rel, task_branch)
        if message is not None and wt_repo.listall_mergeheads():
            Path(wt_repo.path, "MERGE_MSG").write_text(message.rstrip("\n") + "\n", encoding="utf-8")
        return conflicted

    @_locked
    def merge_head(self, worktree: Path) -> str | None:
        """The commit being merged in `worktree` (MERGE_HEAD), or None when no merge is under way."""
        heads = pygit2.Repository(str(worktree)).listall_mergeheads()
        return str(heads[0]) if heads else None

    @_locked
    def undo_branch(self, branch: str, tip: str) -> None:
        """Move `branch` back to `tip`, one of its own earlier tips (a failed resolution's commits dropped).

        Refuses unless the branch still holds `tip` and no worktree has the branch checked out.
        """
        current = self._commit_of(branch).id
        wanted = pygit2.Oid(hex=tip)
        if not self._contains(current, wanted):
            raise GitError(f"branch '{branch}' no longer holds {tip[:7]}; left as it is")
        elsewhere = self._checkouts(branch)
        if elsewhere:
            raise GitError(f"branch '{branch}' is checked out in {elsewhere[0]}; left as it is")
        self._repo.references.create(f"refs/heads/{branch}", wanted, force=True)

    @_locked
    def committed_markers(self, branch: str, paths: Sequence[str]) -> list[str]:
        """Those of `paths` whose committed file on `branch` holds a conflict marker line."""
        tree = self._commit_of(branch).tree
        marked = []
        for path in paths:
            entry = _tree_entry(tree, path)
            if isinstance(entry, pygit2.Blob) and _has_markers(entry.data):
                marked.append(path)
        return marked

    @_locked
    def branch_contains(self, branch: str, commit: str) -> bool:
        """True if `commit` is `branch`'s tip or one of its ancestors."""
        try:
            wanted = pygit2.Oid(hex=commit)
        except ValueError:
            raise GitError(f"{commit!r} is not a commit sha") from None
        return self._contains(self._commit_of(branch).id, wanted)

    @_locked
    def conflicted_paths(self, worktree: Path) -> tuple[str, ...]:
        return _conflicts_of(pygit2.Repository(str(worktree)))

    @_locked
    def take_side(self, worktree: Path, path: str, side: Side) -> None:
        """Resolve `path` in `worktree` with base's version ("ours") or the task's ("theirs")."""
        if side not in ("ours", "theirs"):
            raise GitError(f"unknown side {side!r}: expected 'ours' (main) or 'theirs' (task)")
        wt_repo = pygit2.Repository(str(worktree))
        index = wt_repo.index
        index.read()
        conflicts = index.conflicts
        if conflicts is None or path not in conflicts:
            raise GitError(f"{path} is not in conflict in {worktree}")
        _ancestor, head_entry, merged_in_entry = conflicts[path]
        # In the task worktree HEAD is the task and the merged-in side is base; tuiorch's names are
        # from base's point of view, so they swap here.
        chosen = merged_in_entry if side == "ours" else head_entry
        target = Path(worktree) / path
        del conflicts[path]
        if chosen is None:
            target.unlink(missing_ok=True)
        else:
            blob = wt_repo[chosen.id]
            assert isinstance(blob, pygit2.Blob)
            _write_blob(target, blob.data, chosen.mode)
            index.add(pygit2.IndexEntry(path, chosen.id, chosen.mode))
        index.write()

    @_locked
    def write_resolved(self, worktree: Path, path: str, text: str) -> None:
        """Resolve `path` in `worktree` with `text` (the hunk-by-hunk result), keeping the file's mode."""
        target = Path(worktree) / path
        mode = target.stat().st_mode & 0o777 if target.is_file() else 0o644
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        target.chmod(mode)
        wt_repo = pygit2.Repository(str(worktree))
        index = wt_repo.index
        index.read()
        conflicts = index.conflicts
        if conflicts is not None and path in conflicts:
            del conflicts[path]
        index.add(path)
        index.write()

    @_locked
    def mark_resolved(self, worktree: Path, path: str) -> None:
        """Accept the file as edited by hand (or deleted); refuses while it still has markers."""
        wt_repo = pygit2.Repository(str(worktree))
        index = wt_repo.index
        index.read()
        target = Path(worktree) / path
        if target.is_file() and _has_markers(target.read_bytes()):
            raise GitError(f"{path} still has conflict markers")
        conflicts = index.conflicts
        if conflicts is not None and path in conflicts:
            del conflicts[path]
        if target.exists():
            index.add(path)
        elif path in index:
            index.remove(path)
        index.write()

    @_locked
    def finish_manual_merge(self, worktree: Path, message: str) -> str:
        """Commit the resolved merge on the task branch as (task tip, base tip); returns its sha."""
        wt_repo = pygit2.Repository(str(worktree))
        if wt_repo.state() != RepositoryState.MERGE:
            raise GitError(f"no merge in progress in {worktree}")
        unresolved = _conflicts_of(wt_repo)
        if unresolved:
            raise GitError(f"still in conflict: {', '.join(unresolved)}; take a side or edit them")
        index = wt_repo.index
        index.read()
        # Edits made without staging them (an agent, an editor) belong to the resolution.
        changes = wt_repo.status(untracked_files="all")
        _stage(index, changes)
        head = wt_repo.head.peel(pygit2.Commit)
        merge_heads = wt_repo.listall_mergeheads()
        if len(merge_heads) != 1:
            raise GitError(f"{worktree} is merging {len(merge_heads)} commits; expected one")
        merged_in = wt_repo[merge_heads[0]].peel(pygit2.Commit)
        with_markers = [
            entry.path
            for entry in index
            if _differs_from_both(entry, head.tree, merged_in.tree)
            and (Path(worktree) / entry.path).is_file()
            and _has_markers((Path(worktree) / entry.path).read_bytes())
        ]
        if with_markers:
            raise GitError(f"conflict markers remain in {', '.join(sorted(with_markers))}")
        index.write()
        # git commits the merge (HEAD + MERGE_HEAD) so hooks, identity and signing apply.
        done = self._git(
            ["commit", "--quiet", "--no-edit", "-F", "-"],
            cwd=Path(worktree),
            env=with_task_worktree_config(self._identity_env()),
            input=message.encode(),
        )
        if done.returncode != 0:
            raise GitError(f"git commit refused the resolved merge in {worktree}: {_output(done)}")
        return str(pygit2.Repository(str(worktree)).head.target)


# ---------------------------------------------------------------- helpers


def _is_scratch(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(part, pattern) for part in path.split("/") for pattern in patterns)


def _file_diffs(diff: pygit2.Diff, max_lines: int) -> list[FileDiff]:
    """A pygit2 diff as FileDiffs; past `max_lines` lines in all, hunks are left out (counts stay whole)."""
    files: list[FileDiff] = []
    budget = max_lines
    for patch in diff:
        if patch is None:
            continue
        delta = patch.delta
        _context, added, removed = patch.line_stats
        hunks: list[DiffHunk] = []
        truncated = False
        if not delta.is_binary:
            for hunk in patch.hunks:
                if budget <= 0:
                    truncated = True
                    break
                lines = []
                for line in hunk.lines:
                    if line.origin not in _DIFF_KINDS:
                        continue
                    if len(lines) >= budget:
                        truncated = True  # one huge hunk is cut too, not only the hunks after it
                        break
                    lines.append(DiffLine(_DIFF_KINDS[line.origin], line.old_lineno if line.old_lineno >= 0 else None,
                                          line.new_lineno if line.new_lineno >= 0 else None,
                                          line.content.rstrip("\r\n")))
                budget -= len(lines)
                hunks.append(DiffHunk(hunk.header.rstrip("\n"), tuple(lines)))
        status = _DELTA_STATUS.get(delta.status, "modified")
        files.append(FileDiff(
            path=delta.new_file.path or delta.old_file.path,
            status=status,
            added=added,
            removed=removed,
            hunks=tuple(hunks),
            binary=delta.is_binary,
            old_path=delta.old_file.path if delta.old_file.path != delta.new_file.path else None,
            truncated=truncated,
        ))
    return files


def _changed_paths(old: pygit2.Tree, new: pygit2.Tree) -> set[str]:
    diff = old.diff_to_tree(new)
    changed: set[str] = set()
    for delta in diff.deltas:
        changed.add(delta.old_file.path)
        changed.add(delta.new_file.path)
    return changed


def _file_matches(target: Path, entry: pygit2.Object | None) -> bool:
    """True if the file at `target` is exactly tree entry `entry` (absent when entry is None)."""
    if entry is None:
        return not target.exists() and not target.is_symlink()
    if not isinstance(entry, pygit2.Blob):
        return False
    if entry.filemode == FileMode.LINK:
        return target.is_symlink() and os.readlink(target).encode() == entry.data
    return target.is_file() and not target.is_symlink() and pygit2.hashfile(str(target)) == entry.id


def _already(workdir: Path, new_tree: pygit2.Tree, paths: list[str]) -> list[tuple[str, str, str]]:
    """Index lines (octal mode, blob id, path; mode 0 removes) for those of `paths` whose file in
    `workdir` already is exactly `new_tree`'s version, compared after the path's clean filters."""
    found: list[tuple[str, str, str]] = []
    to_hash: list[tuple[str, pygit2.Blob]] = []
    for rel in paths:
        entry = _tree_entry(new_tree, rel)
        target = workdir / rel
        if entry is None:
            if not target.exists() and not target.is_symlink():
                found.append(("0", "0" * len(str(new_tree.id)), rel))
        elif isinstance(entry, pygit2.Blob):
            if _file_matches(target, entry):
                found.append((f"{entry.filemode:o}", str(entry.id), rel))
            elif entry.filemode != FileMode.LINK and target.is_file() and not target.is_symlink():
                to_hash.append((rel, entry))
    if to_hash:
        # git hashes a file as it would store it (eol conversion, LFS pointer, ident).
        done = subprocess.run(
            ["git", "hash-object", "--stdin-paths"],
            cwd=workdir,
            env=git_env(),
            input="".join(f"{rel}\n" for rel, _ in to_hash).encode(errors="surrogateescape"),
            capture_output=True,
        )
        ids = done.stdout.decode().split() if done.returncode == 0 else []
        for (rel, entry), sha in zip(to_hash, ids, strict=False):
            if sha == str(entry.id):
                found.append((f"{entry.filemode:o}", sha, rel))
    return found


def _drop_inherited_sparse_checkout(path: Path) -> None:
    """Remove the sparse patterns `git worktree add` copied from the user's checkout: tasks see every file."""
    admin_file = path / ".git"
    with contextlib.suppress(OSError):
        admin = Path(admin_file.read_text().strip().removeprefix("gitdir:").strip())
        (admin / "info" / "sparse-checkout").unlink(missing_ok=True)


def _remove_empty_parents(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _stage(index: pygit2.Index, changes: dict[str, int]) -> None:
    """Stage `status()` results: deletions removed, everything else added from disk."""
    for rel, flags in changes.items():
        if flags & FileStatus.IGNORED:
            continue
        if flags & FileStatus.WT_DELETED:
            conflicts = index.conflicts
            if conflicts is not None and rel in conflicts:
                del conflicts[rel]
            if rel in index:
                index.remove(rel)
        elif flags & (
            FileStatus.WT_NEW | FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE | FileStatus.WT_RENAMED
        ):
            index.add(rel)


def _conflicts_of(wt_repo: pygit2.Repository) -> tuple[str, ...]:
    index = wt_repo.index
    index.read()
    if index.conflicts is None:
        return ()
    return tuple(sorted(_entry_path(entries) for entries in index.conflicts))


def _differs_from_both(entry: pygit2.IndexEntry, first: pygit2.Tree, second: pygit2.Tree) -> bool:
    """True for a file whose merged content matches neither parent (merged or hand-edited)."""
    for tree in (first, second):
        existing = _tree_entry(tree, entry.path)
        if existing is not None and existing.id == entry.id:
            return False
    return True


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


def _relabel_markers(target: Path, task_branch: str) -> None:
    """libgit2 labels the task's side 'HEAD'; name the branch so readers know whose side it is."""
    try:
        data = target.read_bytes()
    except OSError:
        return
    relabelled = data.replace(b"<<<<<<< HEAD\n", f"<<<<<<< {task_branch}\n".encode())
    if relabelled != data:
        target.write_bytes(relabelled)


def _walk_untracked(
    root: Path, rel: str, tracked: set[str], tracked_dirs: set[str], keep: set[str]
) -> Iterator[Path]:
    """Paths under `root/rel` that are neither tracked nor kept; whole directories when possible."""
    directory = root / rel if rel else root
    for entry in os.scandir(directory):
        child = f"{rel}/{entry.name}" if rel else entry.name
        if child == ".git" or child in keep or child in tracked:
            continue
        if entry.is_dir(follow_symlinks=False):
            holds_kept = any(k.startswith(child + "/") for k in keep)
            if child in tracked_dirs or holds_kept:
                yield from _walk_untracked(root, child, tracked, tracked_dirs, keep)
            else:
                yield root / child
        else:
            yield root / child


def _clean_untracked(root: Path, index: pygit2.Index, keep: set[str]) -> None:
    """Delete untracked and ignored files in a worktree, sparing `keep` paths and .git."""
    index.read()
    tracked = {entry.path for entry in index}
    tracked_dirs = {str(Path(p).parent.as_posix()) for p in tracked}
    for path in list(tracked_dirs):
        parts = path.split("/")
        tracked_dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for victim in list(_walk_untracked(root, "", tracked, tracked_dirs, keep)):
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim)
        else:
            victim.unlink(missing_ok=True)
