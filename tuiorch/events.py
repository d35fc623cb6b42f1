"""Events the engine emits and the types both front ends read.

The engine calls one sink with these; the headless front end prints them, the TUI
turns them into Textual messages. Names and fields are the `--json` contract:
`to_dict()` is exactly what a JSON line holds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

# Re-exported: front ends and tests import the status from here too.
from tuiorch.model.status import TaskStatus as TaskStatus


def _now() -> datetime:
    return datetime.now(UTC).astimezone()


@dataclass(kw_only=True)
class Event:
    """Base of every engine event. `name` is the JSON `event` value."""

    name: ClassVar[str] = "event"
    #: Shown by the headless line printer; False for high-rate UI-only events.
    printed: ClassVar[bool] = True
    time: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.name, "time": self.time.isoformat(timespec="milliseconds")}
        for f in dataclasses.fields(self):
            if f.name == "time":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(kw_only=True)
class TaskEvent(Event):
    task: str


@dataclass(kw_only=True)
class TaskQueued(TaskEvent):
    name: ClassVar[str] = "task_queued"
    printed: ClassVar[bool] = False
    reason: str = ""


@dataclass(kw_only=True)
class TaskStarted(TaskEvent):
    name: ClassVar[str] = "task_started"
    slot: int
    branch: str
    worktree: str
    attempt: int = 1
    #: The agent runs in tuiorch's sandbox: it can change only its worktree and its branch.
    confined: bool = False


@dataclass(kw_only=True)
class TaskOutput(TaskEvent):
    """A batch of new log lines (UI only; the log file has every line)."""

    name: ClassVar[str] = "task_output"
    printed: ClassVar[bool] = False
    lines: tuple[str, ...] = ()


@dataclass(kw_only=True)
class TaskProgress(TaskEvent):
    name: ClassVar[str] = "task_progress"
    percent: float | None = None
    done: int | None = None
    total: int | None = None
    text: str = ""


@dataclass(kw_only=True)
class TaskActivity(TaskEvent):
    """What the agent says it is doing, when that changes: "running tool Edit", "retrying API 3/10 after 529"."""

    name: ClassVar[str] = "task_activity"
    activity: str = ""


@dataclass(kw_only=True)
class TaskFinished(TaskEvent):
    name: ClassVar[str] = "task_finished"
    exit: int | None = None
    signal: str | None = None
    timed_out: bool = False


@dataclass(kw_only=True)
class TaskStuck(TaskEvent):
    name: ClassVar[str] = "task_stuck"
    idle_seconds: float = 0.0


@dataclass(kw_only=True)
class ConflictPredicted(TaskEvent):
    name: ClassVar[str] = "conflict_predicted"
    paths: tuple[str, ...] = ()


@dataclass(kw_only=True)
class ConflictCleared(TaskEvent):
    name: ClassVar[str] = "conflict_cleared"


@dataclass(kw_only=True)
class MergeStarted(TaskEvent):
    name: ClassVar[str] = "merge_started"


@dataclass(kw_only=True)
class CheckStarted(TaskEvent):
    name: ClassVar[str] = "check_started"
    commit: str = ""


@dataclass(kw_only=True)
class Merged(TaskEvent):
    name: ClassVar[str] = "merged"
    commit: str
    parents: int = 2


@dataclass(kw_only=True)
class ConflictFound(TaskEvent):
    name: ClassVar[str] = "conflict"
    paths: tuple[str, ...] = ()
    #: path -> "content" | "add/add" | "modify/delete" | "delete/modify" | "file/directory"
    kinds: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True)
class CheckFailed(TaskEvent):
    name: ClassVar[str] = "check_failed"
    exit: int | None = None
    output: str = ""


@dataclass(kw_only=True)
class TaskFailed(TaskEvent):
    name: ClassVar[str] = "task_failed"
    reason: str = ""
    exit: int | None = None
    signal: str | None = None


@dataclass(kw_only=True)
class TaskEmpty(TaskEvent):
    name: ClassVar[str] = "task_empty"


@dataclass(kw_only=True)
class TaskCancelled(TaskEvent):
    name: ClassVar[str] = "task_cancelled"


@dataclass(kw_only=True)
class MergeBlocked(TaskEvent):
    name: ClassVar[str] = "merge_blocked"
    paths: tuple[str, ...] = ()
    reason: str = ""


@dataclass(kw_only=True)
class QueueChanged(Event):
    """Order, priorities, holds or the task set changed (UI only)."""

    name: ClassVar[str] = "queue_changed"
    printed: ClassVar[bool] = False


@dataclass(kw_only=True)
class PoolChanged(Event):
    name: ClassVar[str] = "pool_changed"
    workers: int
    paused: bool = False


@dataclass(kw_only=True)
class Notice(Event):
    """Something the user should read that is not a task transition (e.g. a broken TASKS.md edit)."""

    name: ClassVar[str] = "notice"
    message: str
    level: str = "info"  # info | warning | error


@dataclass(kw_only=True)
class TaskSummary:
    id: str
    title: str
    status: str
    duration: float | None = None
    commit: str | None = None
    attempts: int = 0
    reason: str = ""


@dataclass(kw_only=True)
class RunFinished(Event):
    name: ClassVar[str] = "run_finished"
    tasks: list[dict[str, Any]] = field(default_factory=list)
    commits: list[dict[str, str]] = field(default_factory=list)
    merged: int = 0
    failed: int = 0
    exit_code: int = 0
    #: Tokens and cost of every agent run, summed over the tasks whose agents reported them.
    usage: dict[str, Any] | None = None
