"""The confined agents of one run, as the engine drives them: enter before the agent starts, collect after.

While an agent runs, its new commits are brought over to its task branch every CONFINED_SYNC_SECONDS, so
conflict predictions and diffs see them as they see any running branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuiorch.confine.sandbox import ConfinedRun, Sandbox
from tuiorch.git.errors import GitError

__all__ = ["CONFINED_SYNC_SECONDS", "Confiner", "refusals_in"]

#: How often a confined agent's branch is looked at while it runs.
CONFINED_SYNC_SECONDS = 0.5
#: How the sandbox's refusals read in an agent's output (git, shells, Python, node all say it so).
_REFUSED = re.compile(
    r"(/[^\s'\"`:]+)['\"`]?:? ?.{0,40}Read-only file system|Read-only file system: ['\"]?(/[^\s'\"`]+)"
)
#: Paths named in the one notice about refused writes.
_REFUSALS_SHOWN = 3


class Confiner:
    """Each running agent's sandbox, by task id; does nothing when the run is unconfined."""

    def __init__(self, sandbox: Sandbox | None) -> None:
        self.sandbox = sandbox
        self._runs: dict[str, tuple[ConfinedRun, asyncio.Task[None]]] = {}
        #: task id -> (its log, where this attempt's output starts in it)
        self._logs: dict[str, tuple[Path, int]] = {}

    @property
    def on(self) -> bool:
        return self.sandbox is not None

    async def enter(
        self,
        task_id: str,
        worktree: Path,
        branch: str,
        base: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path | None = None,
    ) -> list[str]:
        """The argv to start: the agent's own, or it inside its sandbox (its private repository made).
        `log_path`: the agent's log, where `collect` looks for what the sandbox refused."""
        if self.sandbox is None:
            return list(argv)
        if log_path is not None:
            self._logs[task_id] = (log_path, log_path.stat().st_size if log_path.exists() else 0)
        run = await asyncio.to_thread(self.sandbox.enter, worktree, branch, base, task_id, argv, env)
        self._runs[task_id] = (run, asyncio.create_task(_sync(run, task_id)))
        return run.argv

    async def collect(self, task_id: str, *, quiet: bool = False) -> str:
        """The agent's commits onto its task branch once it has ended; a note for the user, or "".

        Raises GitError when the agent rewrote its branch's history, unless quiet (the attempt is being
        cancelled or torn down: what it committed is still taken when it can be)."""
        entry = self._runs.pop(task_id, None)
        if entry is None:
            return ""
        run, syncing = entry
        syncing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncing
        refused = await asyncio.to_thread(self._refusals, task_id)
        try:
            note = (await asyncio.to_thread(run.collect, task_id)).note
        except GitError:
            if quiet:
                return ""
            raise
        return "; ".join(part for part in (refused, note) if part)

    def _refusals(self, task_id: str) -> str:
        """What the sandbox refused this attempt, as its output tells it: the paths it tried to write."""
        log_path, start = self._logs.pop(task_id, (None, 0))
        return "" if log_path is None else refusals_in(log_path, start)


def refusals_in(log_path: Path, start: int) -> str:
    """The note naming what the sandbox refused an attempt whose output starts at byte `start` of its log;
    "" when it refused nothing."""
    text = _text_from(log_path, start)
    paths = list(dict.fromkeys(found.group(1) or found.group(2) for found in _REFUSED.finditer(text)))
    return _refusal_note(paths)


def _text_from(log_path: Path, start: int) -> str:
    """The log's text from byte `start` on; "" when it cannot be read."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            log.seek(start)
            return log.read()
    except OSError:
        return ""


def _refusal_note(paths: list[str]) -> str:
    """The note naming the paths the sandbox refused (the first few); "" for none."""
    if not paths:
        return ""
    more = f" and {len(paths) - _REFUSALS_SHOWN} more" if len(paths) > _REFUSALS_SHOWN else ""
    return f"the sandbox refused the agent writes outside its worktree: {', '.join(paths[:_REFUSALS_SHOWN])}{more}"


async def _sync(run: ConfinedRun, task_id: str) -> None:
    while True:
        await asyncio.sleep(CONFINED_SYNC_SECONDS)
        with contextlib.suppress(GitError, OSError):
            await asyncio.to_thread(run.sync, task_id)
