"""Saving the run state (`.git/tuiorch/state.toml`): at once on every transition, or once a burst of
queue edits settles."""

from __future__ import annotations

import asyncio

from tuiorch import state
from tuiorch.engine.hub import Hub
from tuiorch.state import StateWriter, state_path

#: Queue edits are saved this long after the last one (a burst of J/K presses is one save).
QUEUE_SAVE_DELAY = 0.3


class Persistence:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._handle: asyncio.TimerHandle | None = None
        #: The run's state file writer (made at the first save: the hub's repository is known by then).
        self._writer: StateWriter | None = None

    def save(self, *, finished: bool = False) -> None:
        hub = self.hub
        data = state.dump(
            hub.queue, base=hub.base, base_at_start=hub._base_at_start, workers=hub.workers, finished=finished
        )
        if self._writer is None:
            self._writer = StateWriter(state_path(hub.git.git_dir))
        self._writer.save(data)

    def save_soon(self) -> None:
        """Queue edits (order, holds, priorities) come in bursts of keys: save once they settle."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        if self._handle is None:
            self._handle = loop.call_later(QUEUE_SAVE_DELAY, self._deferred)

    def drop_pending(self) -> None:
        """The run is ending (its last save follows): a pending deferred save is not needed."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _deferred(self) -> None:
        self._handle = None
        self.save()
