"""The run's summary: one row a task, the commits that landed, and the totals.

Built the same way from a live run's queue (the end of a run, the app's farewell) and from the saved
state of the last run (`tuiorch report`): a `TaskLine` is read from either, and `run_finished` counts
and totals them once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tuiorch.agent_output import Usage
from tuiorch.events import RunFinished
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import TaskStatus


@dataclass(frozen=True)
class TaskLine:
    """One task in the summary. A None field is left out of the row."""

    id: str
    title: str
    status: str
    #: Seconds it worked, to a tenth.
    duration: float | None = None
    #: Its merge commit.
    commit: str | None = None
    #: Attempts on its last try (known to a live run only).
    attempts: int | None = None
    reason: str | None = None
    usage: Usage | None = None

    @classmethod
    def of_record(cls, rec: TaskRecord) -> TaskLine:
        """A live task: its duration so far counts while it works."""
        elapsed = rec.elapsed
        return cls(
            id=rec.task.id,
            title=rec.task.title,
            status=rec.status.value,
            duration=round(elapsed, 1) if elapsed is not None else None,
            commit=rec.commit,
            attempts=rec.attempts,
            reason=rec.reason,
            usage=rec.usage,
        )

    @classmethod
    def of_saved(cls, task_id: str, entry: Mapping[str, Any]) -> TaskLine:
        """A task of a saved run: a duration only when it started and ended, empty values left out."""
        started, ended = entry.get("started"), entry.get("ended")
        return cls(
            id=task_id,
            title=entry.get("title", ""),
            status=entry.get("status", TaskStatus.QUEUED.value),
            duration=round(ended - started, 1) if started and ended else None,
            commit=entry.get("commit") or None,
            reason=entry.get("reason") or None,
            usage=Usage.from_dict(entry.get("usage")) if entry.get("usage") else None,
        )

    def row(self) -> dict[str, Any]:
        fields = {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "duration": self.duration,
            "commit": self.commit,
            "attempts": self.attempts,
            "reason": self.reason,
            "usage": self.usage.to_dict() if self.usage is not None else None,
        }
        return {key: value for key, value in fields.items() if value is not None}


def total_usage(usages: Iterable[Usage | None]) -> Usage | None:
    """Tokens and cost summed; None when no agent reported any."""
    reported = [usage for usage in usages if usage is not None]
    return sum(reported, Usage()) if reported else None


def run_finished(lines: list[TaskLine], commits: Iterable[tuple[str, str]]) -> RunFinished:
    """The summary event: every task's row, the commits (sha, subject) on base, merged and not, the exit code."""
    merged = sum(1 for line in lines if line.status == TaskStatus.MERGED.value)
    total = total_usage(line.usage for line in lines)
    return RunFinished(
        tasks=[line.row() for line in lines],
        commits=[{"commit": sha, "subject": subject} for sha, subject in commits],
        merged=merged,
        failed=len(lines) - merged,
        exit_code=0 if merged == len(lines) else 1,
        usage=total.to_dict() if total is not None else None,
    )


def from_records(records: Iterable[TaskRecord], commits: Iterable[tuple[str, str]]) -> RunFinished:
    """The summary of a live run, its records in the user's order."""
    return run_finished([TaskLine.of_record(rec) for rec in records], commits)


def from_saved(entries: Mapping[str, Mapping[str, Any]], commits: Iterable[tuple[str, str]]) -> RunFinished:
    """The summary of a saved run, its entries in the saved order (see `state.entries_in_order`)."""
    return run_finished([TaskLine.of_saved(task_id, entry) for task_id, entry in entries.items()], commits)
