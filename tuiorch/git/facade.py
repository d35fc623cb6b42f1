"""GitRepo: the whole package behind one object, as the engine has always called it.

It opens the repository once and composes one object per noun, which share that handle and its
lock: `refs` (queries), `worktrees`, `branches`, `leftovers`, `merges`, `conflicts`. Each method
below only forwards to its noun (one Python call, no extra work); new code may call the nouns
directly, e.g. `repo.worktrees.prepare(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pygit2

from tuiorch.diffs import TaskDiff
from tuiorch.git import clean as clean_module
from tuiorch.git.branches import Branches
from tuiorch.git.conflicts import ConflictFile, Conflicts, Side, files_with_markers
from tuiorch.git.diff import DIFF_MAX_LINES, task_diff
from tuiorch.git.identity import CommitRules, Identity
from tuiorch.git.leftovers import Leftovers
from tuiorch.git.merge import Merges
from tuiorch.git.outcomes import MergeOutcome, PreparedMerge
from tuiorch.git.refs import Refs
from tuiorch.git.repo import Repo
from tuiorch.git.worktrees import Worktrees


class GitRepo:
    """One repository, opened once; every git side effect of tuiorch goes through here."""

    def __init__(self, root: Path) -> None:
        self.repo = Repo(Path(root))
        self.root: Path = self.repo.root
        self.git_dir: Path = self.repo.git_dir
        identity = Identity(self.repo)
        # Queries on a handle of their own: they need not wait for a merge or a worktree being claimed.
        self.refs = Refs(self.repo.reader(), identity)
        self.branches = Branches(self.repo)
        self.worktrees = Worktrees(self.repo, self.branches)
        self.leftovers = Leftovers(self.repo, identity)
        self.merges = Merges(self.repo, identity)
        self.conflicts = Conflicts(self.repo, identity)

    # ----------------------------------------------------------------- refs

    def tip(self, branch: str) -> str:
        return self.refs.tip(branch)

    def branch_tip(self, branch: str) -> str | None:
        return self.refs.branch_tip(branch)

    def signature(self) -> pygit2.Signature:
        return self.refs.signature()

    def commit_rules(self) -> CommitRules:
        return self.refs.commit_rules()

    def local_branches(self) -> list[str]:
        return self.refs.local_branches()

    def task_branches(self, template: str) -> list[str]:
        return self.refs.task_branches(template)

    def operations_in_progress(self, base: str) -> list[tuple[Path, str, str]]:
        return self.refs.operations_in_progress(base)

    def has_new_commits(self, branch: str, since: str) -> bool:
        return self.refs.has_new_commits(branch, since)

    def is_merged(self, branch: str, base: str) -> bool:
        return self.refs.is_merged(branch, base)

    def branch_contains(self, branch: str, commit: str) -> bool:
        return self.refs.branch_contains(branch, commit)

    def commits_since(self, base: str, since: str) -> list[tuple[str, str]]:
        return self.refs.commits_since(base, since)

    def find_merge_of(self, tip: str, base: str, limit: int = 10_000) -> str | None:
        return self.refs.find_merge_of(tip, base, limit)

    # ------------------------------------------------------------ worktrees

    def prepare_worktree(
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
        return self.worktrees.prepare(
            path, branch, base, keep, keep_commits=keep_commits, scratch=scratch, known_clean=known_clean
        )

    def take_rescued(self) -> list[str]:
        return self.worktrees.take_rescued()

    def checkout_detached(self, path: Path, commit: str, keep: Sequence[str] = ()) -> None:
        self.worktrees.checkout_detached(path, commit, keep)

    def release_worktree(self, path: Path) -> None:
        self.worktrees.release(path)

    def remove_worktree(self, path: Path) -> None:
        self.worktrees.remove(path)

    def move_worktree(self, path: Path, to: Path) -> bool:
        return self.worktrees.move(path, to)

    def prune(self) -> None:
        self.worktrees.prune()

    def maintain(self) -> None:
        """git's automatic upkeep (repacking when loose objects pile up), which agents' commits skip
        during a run; what git says is not the run's concern."""
        self.repo.git(["maintenance", "run", "--auto", "--quiet"])

    def clean(self, base: str, branch_template: str, worktree_dir: Path, *, force: bool = False) -> list[str]:
        return clean_module.clean(
            self.refs, self.worktrees, self.branches, base, branch_template, worktree_dir, force=force
        )

    # ------------------------------------------------------------- branches

    def delete_branch(self, branch: str, *, force: bool = False, base: str = "main") -> None:
        self.branches.delete(branch, force=force, base=base)

    def undo_branch(self, branch: str, tip: str) -> None:
        self.branches.undo(branch, tip)

    def commit_leftovers(
        self, worktree: Path, message: str, branch: str | None = None, scratch: Sequence[str] = ()
    ) -> str | None:
        return self.leftovers.commit(worktree, message, branch, scratch)

    # ---------------------------------------------------------------- merge

    def test_merge(self, branch: str, base: str) -> tuple[str, ...]:
        return self.merges.predict(branch, base)

    def merge(
        self, branch: str, base: str, message: str, *, _before_cas: Callable[[], None] | None = None
    ) -> MergeOutcome:
        return self.merges.merge(branch, base, message, _before_cas=_before_cas)

    def prepare_merge(self, branch: str, base: str, message: str) -> PreparedMerge | MergeOutcome:
        return self.merges.prepare(branch, base, message)

    def land_merge(self, prepared: PreparedMerge, message: str | None = None) -> MergeOutcome:
        return self.merges.land(prepared, message)

    # ------------------------------------------------------------ conflicts

    def conflict_sides(self, branch: str, base: str, path: str) -> tuple[str | None, str | None, str | None]:
        return self.conflicts.sides(branch, base, path)

    def conflict_texts(self, branch: str, base: str, paths: Sequence[str]) -> tuple[str, str, list[ConflictFile]]:
        return self.conflicts.texts(branch, base, paths)

    def start_manual_merge(
        self, worktree: Path, base: str = "main", message: str | None = None, commit: str | None = None
    ) -> tuple[str, ...]:
        return self.conflicts.start_manual_merge(worktree, base, message, commit)

    def merge_head(self, worktree: Path) -> str | None:
        return self.conflicts.merge_head(worktree)

    def conflicted_paths(self, worktree: Path) -> tuple[str, ...]:
        return self.conflicts.conflicted_paths(worktree)

    def take_side(self, worktree: Path, path: str, side: Side) -> None:
        self.conflicts.take_side(worktree, path, side)

    def write_resolved(self, worktree: Path, path: str, text: str) -> None:
        self.conflicts.write_resolved(worktree, path, text)

    def mark_resolved(self, worktree: Path, path: str) -> None:
        self.conflicts.mark_resolved(worktree, path)

    def finish_manual_merge(self, worktree: Path, message: str) -> str:
        return self.conflicts.finish_manual_merge(worktree, message)

    def committed_markers(self, branch: str, paths: Sequence[str]) -> list[str]:
        return self.conflicts.committed_markers(branch, paths)

    def files_with_markers(self, worktree: Path, paths: Sequence[str]) -> list[str]:
        return files_with_markers(worktree, paths)

    # --------------------------------------------------------------- review

    def task_diff(
        self,
        base: str,
        *,
        branch: str | None = None,
        worktree: Path | None = None,
        commit: str | None = None,
        max_lines: int = DIFF_MAX_LINES,
    ) -> TaskDiff:
        return task_diff(self.git_dir, base, branch=branch, worktree=worktree, commit=commit, max_lines=max_lines)
