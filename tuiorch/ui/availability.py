"""Which main-screen action applies to the current selection, and why not when it does not.

Commands on a task are the engine's to judge (`Orchestrator.refusal`, built on
`tuiorch.model.status.COMMANDS`); the few actions that are the UI's own (a log to show, a diff to review, a
conflict to open) are judged here. The main screen greys its footer with this, `on_key` says the reason,
and the command palette offers only what applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tuiorch.model.status import TaskStatus

if TYPE_CHECKING:
    from tuiorch.orchestrator import Orchestrator, TaskRecord

#: Main-screen actions that are engine commands on the selected task: the engine says when they apply.
ENGINE_COMMANDS = {
    "move_up": "move",
    "move_down": "move",
    "move_top": "move",
    "priority": "priority",
    "toggle_hold": "hold",
    "cancel": "cancel",
    "retry": "retry",
    "merge_now": "merge",
    "send_back": "send_back",
}


class ActionJudge(Protocol):
    """What the command palette asks of the main screen (kept apart so neither imports the other)."""

    def applies(self, action: str, parameters: tuple[object, ...] = ()) -> bool: ...

    async def run_action(self, action: str) -> bool: ...


@dataclass(frozen=True)
class Selection:
    """The task the main screen's keys act on now, and where to find the first conflict."""

    task_id: str | None
    record: TaskRecord | None
    #: The task `c` opens: the selected one if in conflict, else the first in conflict (None: none is).
    conflict_task: Callable[[], str | None]


def has_started(record: TaskRecord) -> bool:
    """The task has been started at least once: it has a branch, a diff, a change count."""
    return not (record.status is TaskStatus.QUEUED and record.branch is None)


def why_not(action: str, orch: Orchestrator, selection: Selection) -> str | None:
    """Why a main-screen action does nothing for `selection` now, or None if it applies."""
    if action in ENGINE_COMMANDS:
        return orch.refusal(ENGINE_COMMANDS[action], selection.task_id)
    rule = _UI_RULES.get(action)
    return rule(orch, selection) if rule is not None else None


def _shrink_pool(orch: Orchestrator, _selection: Selection) -> str | None:
    return "the pool is down to one worker" if orch.workers <= 1 else None


def _conflicts(_orch: Orchestrator, selection: Selection) -> str | None:
    return "no task is in conflict" if selection.conflict_task() is None else None


def _log(_orch: Orchestrator, selection: Selection) -> str | None:
    record = selection.record
    if record is None:
        return NO_SELECTION
    return f"task {record.task.id} has no log yet: it has not started" if record.log_path is None else None


def _diff(_orch: Orchestrator, selection: Selection) -> str | None:
    record = selection.record
    if record is None:
        return NO_SELECTION
    return None if has_started(record) else f"task {record.task.id} has not started: nothing to review yet"


def _open(_orch: Orchestrator, selection: Selection) -> str | None:
    return NO_SELECTION if selection.record is None else None


NO_SELECTION = "no task selected"
#: The UI's own actions that depend on the selection or the pool; every other action always applies.
_UI_RULES: dict[str, Callable[[Orchestrator, Selection], str | None]] = {
    "shrink_pool": _shrink_pool,
    "conflicts": _conflicts,
    "log": _log,
    "diff": _diff,
    "open": _open,
}
