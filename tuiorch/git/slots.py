"""Reusing a slot's worktree for the next task: save any work a killed run left uncommitted there
(under the repository lock), then switch it in place, writing only files that differ (without it)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileStatus, RepositoryState

from tuiorch.git import proc
from tuiorch.git.checkout import paths_collide
from tuiorch.git.cleaning import clean_untracked, is_scratch, normalize_keep
from tuiorch.git.errors import GitError, UncommittedWork
from tuiorch.git.identity import IDENTITY_FALLBACK
from tuiorch.git.repo import Repo
from tuiorch.git.trees import file_matches, tree_entry


def update_submodules(path: Path) -> None:
    """Populate the worktree's submodules at the commits its tree records, as a fresh clone would."""
    if not (path / ".gitmodules").is_file():
        return
    proc.run_checked(
        ["-C", str(path), "submodule", "update", "--init", "--recursive", "--quiet"],
        cwd=path,
        env=proc.with_task_worktree_config(proc.clean_env()),
    )


@dataclass
class SlotSwitch:
    """A reused slot's worktree, its uncommitted work saved, ready to be switched to its new branch."""

    path: Path
    branch: str
    kept: set[str]
    #: The worktree's own handle: the switch needs no repository lock.
    wt_repo: pygit2.Repository
    #: The ref that holds the work found uncommitted there, if any.
    rescued: str | None

    def run(self) -> None:
        """Switch the worktree to the branch, writing only files that differ, and clean it."""
        self.wt_repo.state_cleanup()  # drop MERGE_HEAD etc. left by an abandoned manual merge
        self.wt_repo.checkout(f"refs/heads/{self.branch}", strategy=CheckoutStrategy.FORCE)
        clean_untracked(self.path, self.wt_repo.index, self.kept)
        update_submodules(self.path)


def prepare_reuse(
    repo: Repo, path: Path, branch: str, keep: Sequence[str], scratch: Sequence[str], *, known_clean: bool = False
) -> SlotSwitch:
    """Warm slot reuse, first half: save what someone left uncommitted in the worktree at `path`.

    Uncommitted work found there (left when tuiorch was killed while an agent or a commit was
    under way) is saved as a commit under refs/tuiorch/rescued/; if even that fails, reuse is
    refused (UncommittedWork) rather than overwrite it. The caller holds the repository lock, then
    runs the returned switch without it. `known_clean`: the caller left it with nothing uncommitted,
    so there is nothing to look for.
    """
    repo.clear_dead_agent_lock(path)
    wt_repo = pygit2.Repository(str(path))
    kept = normalize_keep(keep)
    rescued = None
    dirty = [] if known_clean else _work_in(repo, path, wt_repo, branch, kept, scratch)
    if dirty:
        try:
            rescued = _rescue_uncommitted(repo, path, wt_repo)
        except (GitError, pygit2.GitError, OSError) as exc:
            raise UncommittedWork(
                f"{path} holds uncommitted work ({', '.join(dirty[:5])}"
                f"{', ...' if len(dirty) > 5 else ''}) that could not be saved ({exc}); "
                "commit or remove it there, or move the folder away, then retry",
                path,
            ) from exc
    return SlotSwitch(path, branch, kept, wt_repo, rescued)


def _work_in(
    repo: Repo, path: Path, wt_repo: pygit2.Repository, branch: str, kept: set[str], scratch: Sequence[str]
) -> list[str]:
    """The paths in a slot's worktree that hold someone's uncommitted work, sorted."""
    # No index yet: a checkout a killed run never finished (agents start only once it has), so
    # whatever files it left are git's, not an agent's work.
    half_made = not (Path(wt_repo.path) / "index").exists()
    if wt_repo.state() != RepositoryState.NONE or half_made:
        return []
    # A file that already holds the branch's version is no one's work either: a switch to the
    # branch that a kill interrupted leaves such files, and the checkout writes the same.
    target = repo.commit_of(branch).tree
    return sorted(
        rel
        for rel, flags in wt_repo.status(untracked_files="all").items()
        if flags != FileStatus.IGNORED
        and not any(paths_collide(k, rel) for k in kept)
        and not is_scratch(rel, scratch)
        and not file_matches(path / rel, tree_entry(target, rel))
    )


def _rescue_uncommitted(repo: Repo, path: Path, wt_repo: pygit2.Repository) -> str:
    """Commit everything uncommitted in `path` on top of its HEAD under a new rescue ref; its name.

    Plumbing on a copy of the index: the worktree, its index and its branch stay as they are.
    """
    index_copy = Path(wt_repo.path) / "tuiorch-rescue-index"
    shutil.copyfile(Path(wt_repo.path) / "index", index_copy)
    env = proc.with_task_worktree_config(proc.clean_env())
    env["GIT_INDEX_FILE"] = str(index_copy)
    try:
        repo.run_git(["-C", str(path), "add", "-A"], env)
        tree = repo.run_git(["-C", str(path), "write-tree"], env).strip()
    finally:
        index_copy.unlink(missing_ok=True)
    signature = pygit2.Signature(*IDENTITY_FALLBACK)
    message = f"tuiorch: uncommitted work found in {path} before reusing it\n"
    refs = repo.handle.references
    commit = repo.handle.create_commit(None, signature, signature, message, pygit2.Oid(hex=tree), [wt_repo.head.target])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, n = f"refs/tuiorch/rescued/{path.name}-{stamp}", 1
    while name in refs:
        n += 1
        name = f"refs/tuiorch/rescued/{path.name}-{stamp}-{n}"
    refs.create(name, commit)
    return name
