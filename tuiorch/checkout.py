"""Moved to tuiorch.git.checkout; kept so existing imports go on working."""

from tuiorch.git.checkout import (  # noqa: F401
    Busy,
    Checkout,
    IndexUpdate,
    Refused,
    all_checkouts,
    branch_in_hand,
    find_checkouts,
    head_ref,
    hidden_from_status,
    operation_in_progress,
    paths_collide,
)
from tuiorch.git.proc import git_env  # noqa: F401
from tuiorch.git.running import git_processes_in, wait_for_exit  # noqa: F401
