"""Moved to the tuiorch.git package; kept so existing imports go on working."""

from tuiorch.git import (  # noqa: F401
    DIFF_MAX_LINES,
    IDENTITY_FALLBACK,
    TASK_WORKTREE_CONFIG,
    CommitRules,
    GitError,
    GitRepo,
    MergeOutcome,
    MergeStatus,
    PreparedMerge,
    UncommittedWork,
    branch_clash,
    with_task_worktree_config,
)
from tuiorch.git.conflicts import Side  # noqa: F401
