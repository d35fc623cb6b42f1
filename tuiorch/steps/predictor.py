"""Conflict predictions: test-merge each running branch against base whenever either side moved.

The merge is computed in memory only (no worktree, no ref touched). The predictor remembers which
(branch tip, base tip) pair it last tested per task, so a round where nothing moved costs two ref
reads per branch. It returns what changed; the caller records it, tells the front ends and lets the
scheduler hold back queued tasks that touch the predicted paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from tuiorch.git import GitError, GitRepo


@dataclass(frozen=True)
class RunningBranch:
    """A running task's branch, as the predictor needs to see it."""

    task_id: str
    branch: str
    #: The base commit the task started from: a branch still there has nothing of its own to test.
    base_sha: str
    #: The paths predicted last time (empty: none).
    predicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """A task whose predicted conflict changed: the paths it would conflict in now (empty: cleared)."""

    task_id: str
    paths: tuple[str, ...]


class ConflictPredictor:
    def __init__(self, git: GitRepo, base: str) -> None:
        #: Best a handle of its own: the predictions run every half second and must not queue behind
        #: worktree checkouts and merges on the main handle's lock.
        self.git = git
        self.base = base
        #: task id -> (branch tip, base tip) last test-merged, so unchanged pairs are not redone.
        self._tested: dict[str, tuple[str, str]] = {}

    async def predict(self, running: Sequence[RunningBranch]) -> list[Prediction]:
        """The predictions that changed since the branches' last ones, in the order given."""
        if not running:
            self._tested.clear()
            return []
        changed: list[Prediction] = []
        try:
            base_tip = await asyncio.to_thread(self.git.tip, self.base)
            for branch in running:
                paths = await self._test(branch, base_tip)
                if paths is not None and paths != branch.predicted:
                    changed.append(Prediction(branch.task_id, paths))
        except GitError:
            pass  # a branch may vanish under us (cancel, cleanup): the next round sees the new state
        return changed

    async def _test(self, branch: RunningBranch, base_tip: str) -> tuple[str, ...] | None:
        """The conflicting paths of a test merge, or None when the pair was tested already."""
        tip = await asyncio.to_thread(self.git.branch_tip, branch.branch)
        if tip is None or tip == branch.base_sha or self._tested.get(branch.task_id) == (tip, base_tip):
            return None
        self._tested[branch.task_id] = (tip, base_tip)
        return tuple(await asyncio.to_thread(self.git.test_merge, branch.branch, self.base))
