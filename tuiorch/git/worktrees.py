"""Worktrees: a slot's worktree made or reused for a task branch, a detached scratch worktree for the
merge check, released, moved, removed; git's admin dirs kept tidy.

Worktrees are created with the `git worktree add` CLI because pygit2's `add_worktree` holds the GIL
for seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileStatus

from tuiorch.git import proc, slots
from tuiorch.git.branches import Branches
from tuiorch.git.cleaning import (
    clean_untracked,
    drop_inherited_sparse_checkout,
    exclude_pattern,
    normalize_keep,
)
from tuiorch.git.errors import GitError
from tuiorch.git.repo import Repo, locked, reworded


class Worktrees:
    """The worktrees of one repository; each public method takes the repository lock."""

    def __init__(self, repo: Repo, branches: Branches) -> None:
        self.repo = repo
        self.branches = branches
        #: Worktrees being made by `git worktree add` outside the lock (see prepare).
        self._creating: set[Path] = set()
        #: Serialises `git worktree add` registrations (it reads every other worktree's admin dir).
        self._add_lock = threading.Lock()
        #: Refs holding work found uncommitted in a slot about to be reused (see take_rescued), and
        #: their own lock: taking them must not wait for a merge holding the repository's.
        self._rescued: list[str] = []
        self._rescued_lock = threading.Lock()

    def prepare(
        self,
        path: Path,
        branch: str,
        base: str,
        keep: Sequence[str] = (),
        *,
        keep_commits: bool = False,
        scratch: Sequence[str] = (),
        known_clean: bool = False,
    ) -> str:
        """Make `branch` at base's tip and a clean worktree at `path` on it; return the base sha.

        keep_commits: a branch that already holds commits not in base (an earlier attempt's work,
        a conflict being resolved) is checked out as it is instead of refused.
        scratch: an agent CLI's own files (never work) that a reused slot may hold.
        known_clean: the caller left the worktree at `path` with nothing uncommitted (its last agent's
        leftovers were committed) and no process of its own wrote there since: it is not searched for
        someone's uncommitted work (a status of the whole worktree) before its reuse.
        """
        path = Path(path).absolute()
        base_sha, switch = self._claim(path, branch, base, keep, keep_commits, scratch, known_clean)
        if switch is not None:
            # Writing the files takes a while on a big repository: on the worktree's own handle,
            # outside the lock, so merges and the other slots go on meanwhile.
            try:
                switch.run()
            except pygit2.GitError as exc:
                raise reworded(exc) from exc
            return base_sha
        # A full checkout takes seconds on a big repo: git does it outside our lock, so merges and the
        # other slots go on meanwhile (nothing else uses this new path or branch, and no prune runs
        # while a worktree is being made).
        try:
            self._add(path, branch)
        finally:
            self._unclaim(path)
        return base_sha

    @locked
    def _claim(
        self,
        path: Path,
        branch: str,
        base: str,
        keep: Sequence[str],
        keep_commits: bool,
        scratch: Sequence[str],
        known_clean: bool,
    ) -> tuple[str, slots.SlotSwitch | None]:
        """Point the branch and make ready to reuse the worktree at `path` (the switch to run), or
        reserve `path` for a new one (None)."""
        base_commit = self.repo.commit_of(base)
        admin = self.repo.worktree_admin(path) if path.exists() else None
        self.branches.point(
            branch, base, base_commit, reuse_path=path.resolve() if admin else None, keep_commits=keep_commits
        )
        if admin is not None:
            switch = slots.prepare_reuse(self.repo, path, branch, keep, scratch, known_clean=known_clean)
            if switch.rescued is not None:
                with self._rescued_lock:
                    self._rescued.append(switch.rescued)
            self._exclude_if_inside(path)
            return str(base_commit.id), switch
        self._refuse_foreign(path)
        self._prune()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._exclude_if_inside(path)
        self._creating.add(path)
        return str(base_commit.id), None

    def _add(self, path: Path, branch: str) -> None:
        """`git worktree add` + a checkout, outside the repository lock."""
        # `git worktree add` reads every other worktree's admin dir, so two at once can trip over a
        # half-made one: registering is serialised (fast with --no-checkout), the checkout is not.
        env = proc.with_task_worktree_config(proc.clean_env())
        with self._add_lock:
            self.repo.run_git(["worktree", "add", "--quiet", "--no-checkout", "--", str(path), branch], env)
        drop_inherited_sparse_checkout(path)
        # One checkout process per slot: the slots of a wave are made at once, which already keeps every
        # core busy; git's parallel checkout workers on top only added processes (eight made the first
        # wave 2-3x slower on two cores).
        self.repo.run_git(["-C", str(path), "-c", "checkout.workers=1", "reset", "--hard", "--quiet"], env)
        slots.update_submodules(path)

    @locked
    def _unclaim(self, path: Path) -> None:
        self._creating.discard(path)

    def take_rescued(self) -> list[str]:
        """Rescue refs made since the last call (for the caller to tell the user about)."""
        with self._rescued_lock:
            rescued, self._rescued = self._rescued, []
        return rescued

    @locked
    def checkout_detached(self, path: Path, commit: str, keep: Sequence[str] = ()) -> None:
        """Make `path` a tuiorch scratch worktree holding exactly `commit` (detached HEAD, no branch).

        For running the merge check on the exact merge result. An existing tuiorch worktree at `path`
        is reused: forced to `commit` (tracked files the last check changed are restored) and
        cleaned of untracked and ignored files except `keep` (e.g. ".venv"). Anything else at `path`
        is refused. No branch moves.
        """
        path = Path(path).absolute()
        try:
            target = self.repo.handle[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.InvalidSpecError):
            raise GitError(f"{commit!r} is not a commit of {self.repo.root}") from None
        admin = self.repo.worktree_admin(path) if path.exists() else None
        if admin is None:
            self._refuse_foreign(path)
            self._prune()
            path.parent.mkdir(parents=True, exist_ok=True)
            # The check runs on the whole merge result: no sparse cone, a plain index, submodules present.
            env = proc.with_task_worktree_config(proc.clean_env())
            self.repo.run_git(["worktree", "add", "--quiet", "--detach", "--", str(path), str(target.id)], env)
            drop_inherited_sparse_checkout(path)
            slots.update_submodules(path)
        else:
            wt_repo = pygit2.Repository(str(path))
            wt_repo.state_cleanup()
            # FORCE against the worktree's current HEAD: writes only what differs, drops what the
            # new commit lacks, and overwrites whatever the previous check left modified.
            wt_repo.checkout_tree(wt_repo[target.tree_id], strategy=CheckoutStrategy.FORCE)
            wt_repo.set_head(target.id)
            clean_untracked(path, wt_repo.index, normalize_keep(keep))
        self._exclude_if_inside(path)

    @locked
    def release(self, path: Path) -> None:
        """Detach HEAD (at its commit) in the worktree at `path` so its branch can be deleted."""
        path = Path(path).absolute()
        if not path.exists():
            return
        if self.repo.worktree_admin(path) is None:
            raise GitError(f"{path} is not a tuiorch worktree of {self.repo.root}")
        wt_repo = pygit2.Repository(str(path))
        wt_repo.set_head(wt_repo.head.target)

    def remove(self, path: Path) -> None:
        """Delete the worktree directory and its admin dir; fine if the directory is already gone."""
        doomed = self._unregister(Path(path).absolute())
        if doomed is not None:
            _delete_tree(doomed)

    @locked
    def _unregister(self, path: Path) -> Path | None:
        """Drop the admin dir and rename the directory away (instant); the renamed directory to delete.

        The deleting happens outside the lock: removing a big checkout takes seconds, and merges and
        other slots need not wait for it.
        """
        doomed: Path | None = None
        admin = self.repo.worktree_admin(path) if path.exists() else self._registered_admin(path)
        if path.exists():
            if admin is None:
                # Never rmtree a directory we cannot prove is one of this repository's worktrees.
                raise GitError(f"{path} is not a tuiorch worktree of {self.repo.root}; not removing it")
            doomed = path.with_name(f".{path.name}.removing-{os.getpid()}-{threading.get_ident()}")
            path.rename(doomed)
        if admin is not None and admin.exists():
            shutil.rmtree(admin)
        return doomed

    @locked
    def move(self, path: Path, to: Path) -> bool:
        """`git worktree move`; False when git refuses (e.g. a worktree with submodules stays put)."""
        to.parent.mkdir(parents=True, exist_ok=True)
        return self.repo.git(["worktree", "move", str(path), str(to)]).returncode == 0

    @locked
    def prune(self) -> None:
        """Drop admin dirs of worktrees whose directory is gone, and empty leftover admin dirs."""
        self._prune()

    @locked
    def admin(self, path: Path) -> Path | None:
        """The admin dir (.git/worktrees/<name>) if `path` is a linked worktree of this repository."""
        return self.repo.worktree_admin(path)

    @locked
    def uncommitted(self, path: Path) -> list[str]:
        """Paths holding uncommitted work in the worktree at `path` (ignored files are not work)."""
        try:
            changes = pygit2.Repository(str(path)).status(untracked_files="normal")
        except pygit2.GitError:
            # An index libgit2 cannot read (split or sparse) may hold anything: ask git.
            done = self.repo.git(["status", "--porcelain", "-z"], cwd=path)
            return [os.fsdecode(e[3:]) for e in done.stdout.split(b"\0") if len(e) > 3] if done.returncode == 0 else ["?"]
        return sorted(rel for rel, flags in changes.items() if flags != FileStatus.IGNORED)

    # ---------------------------------------------------- under the lock

    def _refuse_foreign(self, path: Path) -> None:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise GitError(f"{path} already exists and is not a tuiorch worktree of {self.repo.root}; move it away")

    def _prune(self) -> None:
        # `git worktree prune` drops admin dirs of vanished worktrees and empty leftovers (leftover
        # admin dirs make libgit2 think brand-new branches are checked out).
        if self._creating:
            return  # another slot's `git worktree add` is under way: its admin dir is not a leftover
        worktrees = self.repo.git_dir / "worktrees"
        if not worktrees.is_dir():
            return  # no worktree was ever added: nothing to prune
        for admin in worktrees.iterdir():
            # `locked` marks a worktree git is still creating (another slot's `worktree add`).
            if admin.is_dir() and not (admin / "gitdir").exists() and not (admin / "locked").exists():
                shutil.rmtree(admin, ignore_errors=True)
        # No git process when every registered worktree is there: this runs before every new worktree,
        # under the repository lock.
        if not _nothing_to_prune(worktrees):
            self.repo.run_git(["worktree", "prune"])

    def _registered_admin(self, path: Path) -> Path | None:
        """The admin dir registered for `path`, even when the directory itself is gone."""
        target = path.resolve()
        worktrees = self.repo.git_dir / "worktrees"
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

    def _exclude_if_inside(self, path: Path) -> None:
        """Keep a worktree nested in the primary working tree from showing as untracked."""
        primary = self.repo.primary_workdir()
        if primary is None:
            return
        try:
            rel = path.resolve().relative_to(primary)
        except ValueError:
            return
        exclude = self.repo.git_dir / "info" / "exclude"
        line = exclude_pattern(rel.as_posix())
        text = exclude.read_text() if exclude.exists() else ""
        if line in text.splitlines():
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as out:
            out.write(("\n" if text and not text.endswith("\n") else "") + line + "\n")


def _nothing_to_prune(worktrees: Path) -> bool:
    """True when each admin dir under `worktrees` names, once, a worktree that exists: what `git worktree
    prune` keeps. False when in doubt (it then decides)."""
    seen: set[str] = set()
    for admin in worktrees.iterdir():
        try:
            named = (admin / "gitdir").read_text().strip()
        except OSError:
            return False
        # Relative to the admin dir when git writes relative paths (os.path.join keeps an absolute one).
        target = os.path.join(admin, named)
        if not named or target in seen or not os.path.exists(target):
            return False
        seen.add(target)
    return True


def _delete_tree(path: Path) -> None:
    """Delete a directory tree (nothing followed through a symlink).

    `rm -rf` where there is one: it does in C what shutil.rmtree does in Python, and in a process of its
    own, so the slots removed at the end of a run go at once instead of one after another (at 2,000 files
    a slot took ~12 ms of the run's last moments each).
    """
    rm = shutil.which("rm")
    if rm is not None and subprocess.run([rm, "-rf", "--", str(path)], capture_output=True).returncode == 0:
        return
    shutil.rmtree(path, ignore_errors=True)
