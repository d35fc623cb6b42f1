"""Pure text helpers for the TUI: durations, progress, queue rows. No Textual here, so they test alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tuiorch.agent_output import format_usage
from tuiorch.model.status import FAILED_STATES, IN_SLOT, TaskStatus

#: Shown where a value is unknown or not yet meaningful.
NONE = "—"


def format_duration(seconds: float | None) -> str:
    """`None` -> "—", 7.4 -> "7s", 185 -> "3m05s", 3720 -> "1h02m"."""
    if seconds is None:
        return NONE
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def short_sha(sha: str | None) -> str:
    return sha[:7] if sha else NONE


def progress_values(progress: Any, status: str) -> tuple[float | None, float]:
    """(total, done) for a ProgressBar: reported percent or done/total; full when merged; None = unknown."""
    if status == TaskStatus.MERGED:
        return 100.0, 100.0
    if progress is not None:
        if getattr(progress, "percent", None) is not None:
            return 100.0, float(progress.percent)
        total, done = getattr(progress, "total", None), getattr(progress, "done", None)
        if total and done is not None:
            return float(total), float(min(done, total))
    return None, 0.0


def progress_text(progress: Any) -> str:
    """The agent's own words from its last PROGRESS line, if any."""
    return str(getattr(progress, "text", "") or "") if progress is not None else ""


def format_deps(depends: Iterable[str], merged: Collection[str]) -> str:
    """"1✓ 2": a tick marks a dependency already merged, so the user sees what is still missing."""
    return " ".join(f"{dep}✓" if dep in merged else dep for dep in depends) or NONE


STATUS_LABELS: Mapping[str, str] = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.STARTING: "starting",
    TaskStatus.RUNNING: "running",
    TaskStatus.STUCK: "stuck",
    TaskStatus.FINISHED: "finished",
    TaskStatus.MERGING: "merging",
    TaskStatus.CHECKING: "checking",
    TaskStatus.MERGED: "merged",
    TaskStatus.FAILED: "failed",
    TaskStatus.CONFLICT: "conflict",
    TaskStatus.CHECK_FAILED: "check failed",
    TaskStatus.EMPTY: "empty",
    TaskStatus.CANCELLED: "cancelled",
    TaskStatus.BLOCKED: "merge blocked",
    TaskStatus.RESOLVING: "resolving",
}


def status_label(status: str, held: bool = False) -> str:
    if held and status == TaskStatus.QUEUED:
        return "held"
    return STATUS_LABELS.get(status, str(status))



#: How loud a note is: the pane and the queue colour it by this.
WARNING, ERROR, INFO = "warning", "error", "info"


#: What the engine is doing with a task: said whatever reason the record holds.
_DOING_NOTES: Mapping[str, str] = {
    TaskStatus.MERGING: "merging into main",
    TaskStatus.CHECKING: "running the [merge] check on the merge result",
}
#: Per status: how loud its reason is, and what is said when the record gives none.
_REASON_NOTES: Mapping[str, tuple[str, str]] = {
    TaskStatus.RESOLVING: ("resolving the conflict", INFO),
    TaskStatus.CHECK_FAILED: ("check failed", ERROR),
    TaskStatus.CONFLICT: (STATUS_LABELS[TaskStatus.CONFLICT], ERROR),
    TaskStatus.FAILED: (STATUS_LABELS[TaskStatus.FAILED], ERROR),
    TaskStatus.BLOCKED: ("", WARNING),
    TaskStatus.FINISHED: ("", WARNING),
}


def task_note(record: Any) -> tuple[str, str]:
    """(text, level) saying what a task waits on or why it stopped, beyond its status label; ("", "") if nothing.

    With warm slots a task leaves its pane when its agent exits, so merging, the [merge] check and what went
    wrong must read the same in the queue table as in a pane.
    """
    status = TaskStatus(record.status)
    if status in IN_SLOT:
        return _predicted_note(record)
    if status in _DOING_NOTES:
        return _DOING_NOTES[status], INFO
    fallback, level = _REASON_NOTES.get(status, ("", INFO))
    text = str(getattr(record, "reason", "") or "") or fallback
    return text, level if text else ""


def _predicted_note(record: Any) -> tuple[str, str]:
    predicted = tuple(getattr(record, "predicted", ()) or ())
    if not predicted:
        return "", ""
    return "⚠ predicted conflict: " + ", ".join(predicted), WARNING


class QueueLine(NamedTuple):
    """One row of the queue table, as text. A tuple: 10,000 of them are built and compared per queue change."""

    id: str
    order: str
    title: str
    priority: str
    deps: str
    state: str
    reason: str
    #: How loud `reason` is (task_note's level); "" for a plain wait reason.
    level: str = ""


def queue_lines(queue_rows: Iterable[Any], records: Mapping[str, Any], slots: Iterable[str | None]) -> list[QueueLine]:
    """Rows for the queue table: the waiting tasks in start order (numbered), then running ones, then the rest.

    `queue_rows` are the orchestrator's QueueRow (task, status, held, reason); `records` its TaskRecords.
    """
    merged = {tid for tid, rec in records.items() if rec.status == TaskStatus.MERGED}
    lines = [_waiting_line(number, row, merged) for number, row in enumerate(queue_rows, start=1)]
    return lines + _other_lines(records, {line.id for line in lines}, merged, slots)


def _other_lines(
    records: Mapping[str, Any], seen: Collection[str], merged: Collection[str], slots: Iterable[str | None]
) -> list[QueueLine]:
    """The tasks not in the queue: active ones first (they explain the pool), then finished ones; stable
    within each group."""
    slot_of = {tid: index for index, tid in enumerate(slots) if tid is not None}
    rest = [rec for tid, rec in records.items() if tid not in seen]
    rest.sort(key=lambda rec: not TaskStatus(rec.status).is_active)
    return [_other_line(rec, merged, slot_of.get(rec.task.id)) for rec in rest]


def _waiting_line(number: int, row: Any, merged: Collection[str]) -> QueueLine:
    task = row.task
    return QueueLine(
        id=task.id,
        order=str(number),
        title=task.title,
        priority=task.priority.label,
        deps=format_deps(task.depends, merged),
        state=status_label(row.status, row.held),
        reason=row.reason or "",
    )


def _other_line(rec: Any, merged: Collection[str], slot: int | None) -> QueueLine:
    """A task out of the queue: its note says which slot holds it, if one does."""
    task = rec.task
    note, level = task_note(rec)
    where = note if slot is None else " · ".join(part for part in (f"slot {slot + 1}", note) if part)
    return QueueLine(
        id=task.id,
        order=NONE,
        title=task.title,
        priority=task.priority.label,
        deps=format_deps(task.depends, merged),
        state=status_label(rec.status, getattr(rec, "held", False)),
        reason=where,
        level=level,
    )


@dataclass(frozen=True)
class PoolCounts:
    workers: int
    paused: bool
    running: int
    queued: int
    merged: int
    #: The agent or the [merge] check failed.
    failed: int
    conflict: int
    #: The agent exited 0 without changing anything.
    empty: int = 0
    cancelled: int = 0
    #: Merges waiting for the user's files to be committed or stashed.
    blocked: int = 0




def pool_counts(records: Mapping[str, Any], workers: int, paused: bool) -> PoolCounts:
    # Count each status once, then classify the few distinct ones: 10,000 records stay about a millisecond.
    by_status = Counter(rec.status for rec in records.values())
    counts = Counter[TaskStatus]()
    for status, number in by_status.items():
        counts[TaskStatus(status)] += number
    return PoolCounts(
        workers=workers,
        paused=paused,
        running=sum(n for s, n in counts.items() if s.is_active),
        queued=counts[TaskStatus.QUEUED],
        merged=counts[TaskStatus.MERGED],
        failed=sum(n for s, n in counts.items() if s in FAILED_STATES),
        conflict=counts[TaskStatus.CONFLICT],
        empty=counts[TaskStatus.EMPTY],
        cancelled=counts[TaskStatus.CANCELLED],
        blocked=counts[TaskStatus.BLOCKED],
    )


def activity_text(record: Any) -> str:
    """What a running agent says it is doing ("running tool Edit", "retrying API 3/10 after 529"), or ""."""
    if not TaskStatus(record.status).is_active:
        return ""
    return str(getattr(record, "activity", "") or "")


def usage_text(record: Any) -> str:
    """A task's tokens and cost so far, where its agent reports them: "12.3k tokens · $0.041", or ""."""
    return format_usage(getattr(record, "usage", None))


def header_text(repo_name: str, counts: PoolCounts, spent: str = "", width: int | None = None) -> str:
    """One line: where, the pool, then each kind of outcome apart, then what the agents cost. Outcomes that
    did not happen are left out (merged always shows).

    With `width`, a line that would not fit is told more briefly, step by step, so the outcomes and the cost
    stay on screen at 80 columns: no running/queued count at 0, the cost without the tokens, the repository
    without "tuiorch · ".
    """
    pool = f"pool {counts.workers}" + (" (paused)" if counts.paused else "")
    cost = spent.rpartition(" · ")[2] if " · $" in spent else spent
    where = f"tuiorch · {repo_name}"
    # Each step briefer than the one before: (where, whether counts at 0 show, what the agents cost).
    steps = ((where, True, spent), (where, False, spent), (where, False, cost), (repo_name, False, cost))
    for where, zero_counts, money in steps:
        text = _header_line(where, pool, counts, zero_counts, money)
        if width is None or len(text) <= width:
            break
    return text


def _header_line(where: str, pool: str, counts: PoolCounts, zero_counts: bool, money: str) -> str:
    parts = [where, pool]
    parts += [
        f"{label} {number}"
        for label, number in (("running", counts.running), ("queued", counts.queued))
        if number or zero_counts
    ]
    parts.append(f"merged {counts.merged}")
    parts += outcome_parts(counts)
    parts += [money] if money else []
    return " │ ".join(parts)


def outcome_parts(counts: PoolCounts) -> list[str]:
    """"conflict 1", "failed 2", ...: each outcome that happened, apart (an empty or cancelled task did
    not fail)."""
    return [
        f"{label} {number}"
        for label, number in (
            ("conflict", counts.conflict),
            ("blocked", counts.blocked),
            ("failed", counts.failed),
            ("empty", counts.empty),
            ("cancelled", counts.cancelled),
        )
        if number
    ]


def exit_code_for(statuses: Iterable[str]) -> int:
    """The run's exit code: 0 when every task merged, else 1."""
    return 0 if all(s == TaskStatus.MERGED for s in statuses) else 1


def has_conflict_markers(text: str) -> bool:
    """True while a file still holds git conflict markers (a hand edit is not finished)."""
    return any(
        line.startswith(("<<<<<<< ", ">>>>>>> ")) or line.rstrip() == "=======" for line in text.splitlines()
    )


#: What a task can wait on the user for when the app quits: next to each, what to do about it.
PENDING_HINTS: Mapping[str, str] = {
    TaskStatus.CONFLICT: "run tuiorch again and press c to resolve it",
    TaskStatus.RESOLVING: "run tuiorch again and press c to finish resolving it",
    TaskStatus.BLOCKED: "commit or stash your changes, then run tuiorch again",
    TaskStatus.CHECK_FAILED: "run tuiorch again: r re-runs the check, g sends it back to its agent",
    TaskStatus.FINISHED: "run tuiorch again and press m to merge it",
}


def pending_lines(records: Iterable[Any]) -> list[str]:
    """One line per task that waits on the user (a conflict first of all), for the terminal after quitting."""
    lines = []
    for record in records:
        hint = PENDING_HINTS.get(TaskStatus(record.status))
        if hint is None:
            continue
        reason = str(getattr(record, "reason", "") or status_label(record.status))
        lines.append(f"  task {record.task.id} ({record.task.title}): {reason}; {hint}")
    return lines


def summary_rows(
    records: Mapping[str, Any], order: Iterable[str], *, redact: bool
) -> list[tuple[str, str, str, str, str, str, str]]:
    """One row per task for the summary screen: id, title, status, duration, commit, agents' use, reason."""
    return [_summary_row(task_id, records[task_id], redact) for task_id in order]


def _summary_row(task_id: str, record: Any, redact: bool) -> tuple[str, str, str, str, str, str, str]:
    """`redact` hides the duration and the commit's sha, which differ run to run (snapshot tests)."""
    return (
        task_id,
        record.task.title,
        status_label(record.status, record.held),
        NONE if redact else format_duration(record.elapsed),
        "•" * 7 if redact and record.commit else short_sha(record.commit),
        format_usage(record.usage) or NONE,
        record.reason,
    )
