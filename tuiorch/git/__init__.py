"""Every git side effect of tuiorch, by noun; the only part of tuiorch that imports pygit2.

- repo.py: the repository opened once, its lock (`@locked`, the one locking style) and GitError
- refs.py: queries on branches and commits; identity.py: who commits, signing, hooks
- worktrees.py, slots.py, cleaning.py: a slot's worktree made, reused, cleaned, removed
- branches.py: task branches pointed, deleted, moved back; leftovers.py: an agent's uncommitted work
- merge.py (the only busy-ref retry loop), land.py (compare-and-swap), checkout.py (the user's
  checkout of base brought along), running.py (git commands running there), merge_commit.py
  (hooks, signing), outcomes.py
- conflicts.py: conflict triage in a task worktree; diff.py: a task's changes for review
- locks.py: lock files a killed run left behind; clean.py: `tuiorch clean`; create.py: a new repository
- facade.py: GitRepo, the whole package behind one object
"""

from tuiorch.git.create import create_repository
from tuiorch.git.diff import DIFF_MAX_LINES
from tuiorch.git.errors import GitError, UncommittedWork
from tuiorch.git.facade import GitRepo
from tuiorch.git.identity import IDENTITY_FALLBACK, CommitRules
from tuiorch.git.outcomes import MergeOutcome, MergeStatus, PreparedMerge
from tuiorch.git.proc import TASK_WORKTREE_CONFIG, with_task_worktree_config
from tuiorch.git.refs import (
    branch_clash,
    current_branch,
    discover_git_dir,
    head_is_detached,
    valid_branch_name,
    worktree_head,
)

__all__ = [
    "DIFF_MAX_LINES",
    "IDENTITY_FALLBACK",
    "TASK_WORKTREE_CONFIG",
    "CommitRules",
    "GitError",
    "GitRepo",
    "MergeOutcome",
    "MergeStatus",
    "PreparedMerge",
    "UncommittedWork",
    "branch_clash",
    "create_repository",
    "current_branch",
    "discover_git_dir",
    "head_is_detached",
    "valid_branch_name",
    "with_task_worktree_config",
    "worktree_head",
]
