"""A node's side of the repository: one cache repository per central repository, warm slot worktrees.

Runs on a Ray node, so it uses only the standard library and the git command line (a node needs git, not
pygit2). The cache is a bare repository the central repository's objects reach in bundles: the first
bundle holds the history, later ones only what the node lacks. Slot worktrees are worktrees of the cache,
reused between tasks like local slots (reset and cleaned except the `keep` paths).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Where a node keeps its caches and slots unless TUIORCH_RAY_DIR says otherwise.
DEFAULT_DIR = Path.home() / ".cache" / "tuiorch" / "ray"
#: The refs a shipped start commit is fetched into on the node (one per task).
SHIP_PREFIX = "refs/tuiorch/ship/"


class NodeGitError(Exception):
    """A git command on the node failed; the message names it and what git said."""


def node_dir() -> Path:
    return Path(os.environ.get("TUIORCH_RAY_DIR") or DEFAULT_DIR)


def repo_key(central_git_dir: str) -> str:
    """A short stable name for a central repository's cache on every node."""
    return hashlib.sha256(central_git_dir.encode()).hexdigest()[:16]


def _git(
    args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None, data: bytes | None = None
) -> bytes:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise NodeGitError(f"git {' '.join(args[:3])} failed in {cwd}: {said}")
    return done.stdout


@dataclass(frozen=True)
class Prepared:
    workspace: str
    fresh: bool


class NodeRepo:
    """The cache repository of one central repository on this node, and its slot worktrees."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.root = (root or node_dir()) / key
        self.cache = self.root / "cache.git"
        self.slots = self.root / "slots"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One agent at a time changes the cache's refs and worktree list (several share a node)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(self) -> None:
        """The cache exists; made aside and renamed into place, so nobody sees it half made."""
        if self.cache.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        making = Path(tempfile.mkdtemp(prefix="cache-", dir=self.root))
        _git(["init", "--bare", "-q", str(making)], cwd=self.root)
        try:
            os.rename(making, self.cache)
        except OSError:  # another agent made it first
            shutil.rmtree(making, ignore_errors=True)

    def tips(self) -> list[str]:
        """Every commit a ref of the cache names: the central side ships only what is not behind these."""
        if not self.cache.exists():
            return []
        out = _git(["for-each-ref", "--format=%(objectname)"], cwd=self.cache)
        return sorted(set(out.decode().split()))

    def receive(self, bundle: bytes | None, ship_ref: str) -> None:
        """Fetch a bundle's `ship_ref` into the cache (None: the node already has everything)."""
        if bundle is None:
            return
        with tempfile.NamedTemporaryFile(dir=self.root, suffix=".bundle", delete=False) as out:
            out.write(bundle)
        try:
            # The ref and any `-also-N` refs beside it (a resolver's base).
            _git(["fetch", "-q", out.name, f"+{ship_ref}*:{ship_ref}*"], cwd=self.cache)
        finally:
            os.unlink(out.name)

    def has_commit(self, sha: str) -> bool:
        done = subprocess.run(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=self.cache, capture_output=True, check=False
        )
        return done.returncode == 0

    def slot_path(self, slot: int) -> Path:
        return self.slots / str(slot)

    def prepare_slot(self, slot: int, branch: str, start: str, keep: Sequence[str] = ()) -> Prepared:
        """The slot's worktree on `branch` at `start`, clean except `keep`; made on first use."""
        path = self.slot_path(slot)
        fresh = not (path / ".git").exists()
        if fresh:
            shutil.rmtree(path, ignore_errors=True)
            self.slots.mkdir(parents=True, exist_ok=True)
            _git(["worktree", "prune"], cwd=self.cache)
            _git(["worktree", "add", "-q", "--detach", str(path), start], cwd=self.cache)
        else:
            _git(["checkout", "-q", "-f", "--detach", start], cwd=path)
            excludes = [arg for pattern in keep for arg in ("-e", pattern)]
            _git(["clean", "-q", "-ffdx", *excludes], cwd=path)
        _git(["checkout", "-q", "-B", branch, start], cwd=path)
        return Prepared(workspace=str(path), fresh=fresh)

    def remove_slot(self, slot: int) -> None:
        path = self.slot_path(slot)
        shutil.rmtree(path, ignore_errors=True)
        if (self.cache / "HEAD").exists():
            _git(["worktree", "prune"], cwd=self.cache)

    def keep_aside(self, slot: int, name: str) -> str:
        """Move the slot's worktree out of the pool (work that could not be committed stays in it); the
        slot is made anew next time. Returns where it went."""
        kept = self.root / "kept" / name
        kept.parent.mkdir(parents=True, exist_ok=True)
        _git(["worktree", "move", str(self.slot_path(slot)), str(kept)], cwd=self.cache)
        return str(kept)

    def release_slot(self, slot: int) -> None:
        """Detach the slot's HEAD so its branch can go (the worktree stays warm for the next task)."""
        path = self.slot_path(slot)
        if (path / ".git").exists():
            with contextlib.suppress(NodeGitError):
                _git(["checkout", "-q", "--detach"], cwd=path)


def head_branch(workspace: str) -> str | None:
    done = subprocess.run(
        ["git", "symbolic-ref", "-q", "--short", "HEAD"], cwd=workspace, capture_output=True, check=False
    )
    return done.stdout.decode().strip() or None if done.returncode == 0 else None


def tip(workspace: str, branch: str) -> str:
    return _git(["rev-parse", f"refs/heads/{branch}"], cwd=Path(workspace)).decode().strip()


def commit_leftovers(
    workspace: str, message: str, branch: str, identity: Mapping[str, str], scratch: Sequence[str] = ()
) -> str | None:
    """`git add -A` + `git commit` of what the agent left uncommitted; None when clean.

    Refuses (NodeGitError) when the agent left its branch: its leftovers belong to no task branch.
    """
    path = Path(workspace)
    if head_branch(workspace) != branch:
        raise NodeGitError(f"the agent left {branch} in {workspace}; its uncommitted work stays there")
    # A scratch name matches on any path component, and everything under it.
    excludes = [f":(exclude,glob)**/{pattern}{tail}" for pattern in scratch for tail in ("", "/**")]
    _git(["add", "-A", "--", ".", *excludes], cwd=path, env=identity)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=path, check=False)
    if staged.returncode == 0:
        return None
    _git(["commit", "-q", "-m", message], cwd=path, env=identity)
    return tip(workspace, branch)


def result_bundle(workspace: str, branch: str, exclude: Sequence[str]) -> bytes | None:
    """A bundle of `branch` without what the central repository has (`exclude`); None when nothing is new."""
    path = Path(workspace)
    head = tip(workspace, branch)
    if head in exclude:
        return None
    args = ["bundle", "create", "-q", "-", f"refs/heads/{branch}", "--not", *exclude]
    done = subprocess.run(["git", *args], cwd=path, capture_output=True, check=False)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        if "empty bundle" in said:
            return None
        raise NodeGitError(f"git bundle create failed in {workspace}: {said}")
    return done.stdout


MARKERS = ("<<<<<<< ", ">>>>>>> ")


def merge_in(workspace: str, base: str, message: str, identity: Mapping[str, str]) -> list[str]:
    """Merge `base` into the checked-out branch without committing; the paths left in conflict."""
    path = Path(workspace)
    done = subprocess.run(
        ["git", "merge", "-q", "--no-ff", "--no-commit", "-m", message, base],
        cwd=path,
        capture_output=True,
        env={**os.environ, **identity},
        check=False,
    )
    unmerged = _git(["diff", "--name-only", "--diff-filter=U", "-z"], cwd=path).decode()
    conflicted = [p for p in unmerged.split("\0") if p]
    if done.returncode != 0 and not conflicted:
        said = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise NodeGitError(f"git merge of {base[:10]} failed in {workspace}: {said}")
    return conflicted


def has_markers(file: Path) -> bool:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith(MARKERS) or line == "=======" for line in text.splitlines())


def finish_resolution(
    workspace: str, conflicted: Sequence[str], message: str, identity: Mapping[str, str]
) -> list[str]:
    """Stage the conflicted paths freed of markers and commit the merge if the agent left it uncommitted;
    returns the paths still marked (then nothing is committed)."""
    path = Path(workspace)
    marked = [p for p in conflicted if has_markers(path / p)]
    if marked:
        return marked
    if (path / ".git").is_file() or (path / ".git").is_dir():
        merging = subprocess.run(
            ["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=path, capture_output=True, check=False
        )
        if merging.returncode == 0:
            _git(["add", "-A"], cwd=path, env=identity)
            _git(["commit", "-q", "--no-edit", "-m", message], cwd=path, env=identity)
    return []


def node_sweep(key: str, remove_slots: bool) -> int:
    """Run on a node: remove this repository's slot worktrees there; how many there were."""
    repo = NodeRepo(key)
    removed = 0
    if remove_slots and repo.slots.exists():
        for slot in list(repo.slots.iterdir()):
            if slot.name.isdigit():
                repo.remove_slot(int(slot.name))
                removed += 1
    return removed
