"""Predicted conflicts: running branches test-merged against main, the changes told to the front ends.

A queued task whose paths a running branch is predicted to conflict on waits (the scheduler reads
`rec.predicted`); the test-merges touch no worktree.
"""

from __future__ import annotations

import asyncio

from tuiorch import events as ev
from tuiorch.engine.hub import Hub
from tuiorch.model.status import IN_SLOT
from tuiorch.steps.predictor import RunningBranch

#: How often running branches are test-merged against main (only when a tip moved).
PREDICT_SECONDS = 0.5


class Predictions:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def loop(self) -> None:
        """Test-merge each running branch against main whenever either side moves (no worktree touched)."""
        while True:
            await asyncio.sleep(PREDICT_SECONDS)
            await self.predict()

    async def predict(self) -> None:
        hub = self.hub
        running = [
            RunningBranch(r.task.id, r.branch, r.base_sha, r.predicted)
            for r in hub.records.values()
            if r.status in IN_SLOT and r.branch and r.base_sha
        ]
        for prediction in await hub.predictor.predict(running):
            rec = hub.records[prediction.task_id]
            if rec.status not in IN_SLOT or prediction.paths == rec.predicted:
                continue
            rec.predicted = prediction.paths
            if prediction.paths:
                hub._emit(ev.ConflictPredicted(task=rec.task.id, paths=prediction.paths))
            else:
                hub._emit(ev.ConflictCleared(task=rec.task.id))
            hub._wake.set()  # queued tasks touching these paths now wait (or may start)
