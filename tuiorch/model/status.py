"""A task's status: the statuses, the moves between them, and which user command applies in which.

The one place these rules live. The orchestrator's `_transition` is the only code that changes a
task's status, and it asks `check_transition` first; front ends and the CLI ask `COMMANDS` (through
`Orchestrator.refusal`) before offering a key, instead of re-deriving it.

The life of a task, briefly:

- `queued` → `starting` (a slot is free) → `running` ⇄ `stuck` → `finished` | `empty` | `failed` |
  `cancelled`, or back to `queued` when a failed attempt is retried.
- `finished` → `merging` → (`checking`, with a [merge] check) → `merged` | `conflict` | `merge_blocked` |
  `check_failed`.
- `conflict` → `resolving` (by hand or by the resolver agent) → `merging` again, or back to `conflict`.
- A git or internal error ends any unmerged status in `failed`.
- The user's retry, requeue and send-back lead out of the stopped statuses (see `TRANSITIONS`).
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where a task is. The values are the `--json` and saved-state spelling."""

    #: Waiting for a slot (or held, or waiting on what it depends on or touches).
    QUEUED = "queued"
    #: Has a slot; its worktree is being prepared.
    STARTING = "starting"
    #: Its agent runs.
    RUNNING = "running"
    #: Its agent runs but has been silent for [agent] stuck_after seconds.
    STUCK = "stuck"
    #: Its agent committed work; the branch waits to be merged (by itself, or on the user's word).
    FINISHED = "finished"
    #: Its branch is being merged into the base branch.
    MERGING = "merging"
    #: The [merge] check runs on the merge commit.
    CHECKING = "checking"
    #: In the base branch.
    MERGED = "merged"
    #: The agent failed past its retries, or git or tuiorch failed on the task.
    FAILED = "failed"
    #: Its branch conflicts with the base branch.
    CONFLICT = "conflict"
    #: The [merge] check failed on the merge commit.
    CHECK_FAILED = "check_failed"
    #: The agent exited 0 without changing anything.
    EMPTY = "empty"
    #: Cancelled by the user (or by stopping the run).
    CANCELLED = "cancelled"
    #: The merge would overwrite the user's uncommitted changes; retried until they commit or stash.
    BLOCKED = "merge_blocked"
    #: Its conflict is being resolved, by the user or by the resolver agent.
    RESOLVING = "resolving"

    @property
    def is_active(self) -> bool:
        """An agent or a merge is working on the task right now."""
        return self in ACTIVE

    @property
    def is_final(self) -> bool:
        """Nothing more happens to the task without the user's word."""
        return self in FINAL


_S = TaskStatus

#: The task holds a worker slot: its agent is being started or runs.
IN_SLOT = frozenset({_S.STARTING, _S.RUNNING, _S.STUCK})
#: Its branch is not in the base branch yet: the files it touches still count as busy.
UNMERGED = IN_SLOT | {_S.FINISHED, _S.MERGING, _S.CHECKING, _S.CONFLICT, _S.BLOCKED, _S.RESOLVING, _S.CHECK_FAILED}
#: An agent or a merge works on the task right now.
ACTIVE = IN_SLOT | {_S.FINISHED, _S.MERGING, _S.CHECKING, _S.RESOLVING}
#: Nothing more happens without the user's word.
FINAL = frozenset({_S.MERGED, _S.FAILED, _S.CONFLICT, _S.CHECK_FAILED, _S.EMPTY, _S.CANCELLED})
#: An agent process works on the task now: its own, or the resolver.
AGENT_AT_WORK = frozenset({_S.RUNNING, _S.STUCK, _S.RESOLVING})
#: Its conflict waits for the user or is being resolved.
IN_CONFLICT = frozenset({_S.CONFLICT, _S.RESOLVING})
#: Stopped by a failure the user should look at.
FAILED_STATES = frozenset({_S.FAILED, _S.CHECK_FAILED})
#: A merge of the branch is under way, or waits to be (re)tried.
MERGE_PHASE = frozenset({_S.FINISHED, _S.MERGING, _S.CHECKING, _S.BLOCKED, _S.CONFLICT, _S.RESOLVING, _S.CHECK_FAILED})

#: Where a git or internal error ends a task that is not merged yet.
_ERROR_ENDS = frozenset({_S.FAILED})

#: Every allowed move: from -> the statuses it may go to. A status listed as its own target is
#: re-entered with a new event (a new idle report, a new conflict, other blocking files).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    _S.QUEUED: frozenset({_S.STARTING}),
    _S.STARTING: frozenset({_S.RUNNING, _S.CANCELLED}) | _ERROR_ENDS,
    # Back to queued: a failed attempt with retries left.
    _S.RUNNING: frozenset({_S.STUCK, _S.FINISHED, _S.EMPTY, _S.CANCELLED, _S.QUEUED}) | _ERROR_ENDS,
    _S.STUCK: frozenset({_S.STUCK, _S.RUNNING, _S.FINISHED, _S.EMPTY, _S.CANCELLED, _S.QUEUED}) | _ERROR_ENDS,
    # Back to queued: sent back to its agent from the review, with the user's note.
    _S.FINISHED: frozenset({_S.MERGING, _S.QUEUED}) | _ERROR_ENDS,
    _S.MERGING: frozenset({_S.CHECKING, _S.MERGED, _S.CONFLICT, _S.BLOCKED}) | _ERROR_ENDS,
    _S.CHECKING: frozenset({_S.MERGED, _S.CONFLICT, _S.BLOCKED, _S.CHECK_FAILED}) | _ERROR_ENDS,
    # A blocked merge is retried without passing through merging again.
    _S.BLOCKED: frozenset({_S.BLOCKED, _S.CHECKING, _S.MERGED, _S.CONFLICT, _S.QUEUED}) | _ERROR_ENDS,
    _S.CONFLICT: frozenset({_S.CONFLICT, _S.RESOLVING, _S.MERGING, _S.QUEUED}) | _ERROR_ENDS,
    _S.RESOLVING: frozenset({_S.RESOLVING, _S.CONFLICT, _S.MERGING, _S.QUEUED}) | _ERROR_ENDS,
    # retry re-runs the check (merging); send back and requeue queue it again.
    _S.CHECK_FAILED: frozenset({_S.MERGING, _S.QUEUED}) | _ERROR_ENDS,
    # retry
    _S.FAILED: frozenset({_S.QUEUED}),
    _S.CANCELLED: frozenset({_S.QUEUED}),
    _S.EMPTY: frozenset({_S.QUEUED}),
    _S.MERGED: frozenset(),
}

#: What a task can be restored to while a run rebuilds its queue from the saved state (its record
#: starts queued): merged, finished work that only needs merging, or queued again.
RESTORABLE = frozenset({_S.QUEUED, _S.FINISHED, _S.MERGED})

#: Which statuses each user command on a task applies in. `merge` also needs [merge] auto = false.
COMMANDS: dict[str, frozenset[TaskStatus]] = {
    "cancel": IN_SLOT,
    "retry": frozenset({_S.FAILED, _S.CANCELLED, _S.EMPTY, _S.CHECK_FAILED}),
    "move": frozenset({_S.QUEUED}),
    "hold": frozenset({_S.QUEUED}),
    "priority": frozenset({_S.QUEUED}),
    "merge": frozenset({_S.FINISHED}),
    "send_back": frozenset({_S.CONFLICT, _S.RESOLVING, _S.CHECK_FAILED}),
    "requeue": frozenset({_S.CONFLICT, _S.RESOLVING, _S.CHECK_FAILED, _S.BLOCKED}),
    "triage": IN_CONFLICT,
    # The diff screen's send back, with the user's note for the task's agent.
    "review": frozenset({_S.FINISHED, _S.CHECK_FAILED}),
}

#: Why a command does not apply, said after "task X is <status>".
REFUSALS: dict[str, str] = {
    "cancel": "; only a running task can be cancelled",
    "retry": "; only a failed, cancelled, empty or check-failed task is retried",
    "move": ", not queued; only waiting tasks are reordered, held or reprioritised",
    "hold": ", not queued; only waiting tasks are reordered, held or reprioritised",
    "priority": ", not queued; only waiting tasks are reordered, held or reprioritised",
    "merge": "; only a finished task waiting for your word is merged by hand",
    "send_back": "; only a conflict or a failed check goes back to an agent",
    "requeue": "; nothing to requeue",
    "triage": ", not in conflict",
    "review": "; only a finished task (or a failed check) goes back to its agent",
}


class IllegalTransition(Exception):
    """A status change the table does not allow: a bug in the engine, never the user's doing."""


def words(status: TaskStatus) -> str:
    """The status as a user reads it in a sentence ("check failed", "merge blocked")."""
    return status.value.replace("_", " ")


def check_transition(task_id: str, current: TaskStatus, target: TaskStatus, *, restoring: bool = False) -> None:
    """Raise IllegalTransition unless `current` may become `target`.

    `restoring`: the run is rebuilding its queue from the saved state, where a fresh (queued) record
    takes the status its task had, as far as `RESTORABLE` allows.
    """
    if restoring:
        if current is _S.QUEUED and target in RESTORABLE:
            return
        raise IllegalTransition(f"task {task_id}: cannot restore {current.value} to {target.value}")
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"task {task_id}: {current.value} -> {target.value} is not allowed")


def command_refusal(command: str, task_id: str, status: TaskStatus) -> str | None:
    """Why `command` does not apply to a task in `status`, in the user's words, or None if it does."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    if status in COMMANDS[command]:
        return None
    return f"task {task_id} is {words(status)}{REFUSALS[command]}"
