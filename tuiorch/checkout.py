"""Moved to tuiorch.git.checkout and tuiorch.git.heads; kept so existing imports go on working."""

from tuiorch.git.checkout import Busy, IndexUpdate, Refused, hidden_from_status, paths_collide  # noqa: F401
from tuiorch.git.heads import (  # noqa: F401
    Checkout,
    all_checkouts,
    branch_in_hand,
    find_checkouts,
    head_ref,
    operation_in_progress,
)
from tuiorch.git.proc import git_env  # noqa: F401
from tuiorch.git.running import git_processes_in, wait_for_exit  # noqa: F401
