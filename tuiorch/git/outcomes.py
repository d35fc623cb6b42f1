"""What a merge hands back: a prepared merge commit waiting to land, and the outcome of an attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# "moved" only comes from land_merge: base is no longer the tip the merge was prepared on.
MergeStatus = Literal["merged", "conflict", "blocked", "already", "moved"]


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
