"""`TaskRecord`: everything the run knows about one task, as the front ends read it.

The fields stay flat (the UI, the CLI and the run loop read them by name) but are grouped below by the
concern they serve: the task and its queue flags, where it runs, the current attempt, what a retry
remembers, the merge, and a conflict.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tuiorch.model.status import TaskStatus

if TYPE_CHECKING:
    from tuiorch.agent_output import Progress, Usage
    from tuiorch.git import PreparedMerge
    from tuiorch.runners.base import Attachment
    from tuiorch.tasks import Task

#: Agent output lines a record keeps (what a pane shows when it opens on a running task).
TAIL_LINES = 200
#: The agent's stderr lines a record keeps (its words when it dies without saying why on stdout).
STDERR_TAIL_LINES = 20


@dataclass
class TaskRecord:
    # ---- the task and its place in the queue
    #: The task as the task file (or the user's priority override) defines it.
    task: Task
    #: Where the task stands; written only by the orchestrator's transitions.
    status: TaskStatus = TaskStatus.QUEUED
    #: What the user should know about the status now ("requeued after conflict", why it failed ...).
    reason: str = ""
    #: The user holds the task back: it does not start until released.
    held: bool = False
    #: The user changed the priority from the task file's (saved, and kept on reload).
    priority_override: bool = False

    # ---- placement
    #: Pool slot (0-based) while the task holds one.
    slot: int | None = None
    #: The task's branch, once it has one.
    branch: str | None = None
    #: The worktree its agent works (or a resolver resolves) in.
    worktree: Path | None = None
    #: The task's agent owns its slot worktree (set while it is prepared and used; cleared on leaving).
    holds_worktree: bool = False
    #: Where its agent runs or last ran: "local" or a node's name ("" before any agent ran).
    where: str = ""
    #: Its agent runs (or ran) confined to its worktree and branch.
    confined: bool = False
    #: What a restarted tuiorch needs to find the running agent again (saved with the run state).
    attachment: Attachment | None = None
    #: A run of its agent that outlived the tuiorch that started it: the next attempt takes it up.
    resume: Attachment | None = None

    # ---- the current attempt
    #: Attempts started on the current try (reset by retry and requeue).
    attempts: int = 0
    #: Wall-clock start and end of the task's work, for its duration.
    started: float | None = None
    ended: float | None = None
    #: When the agent last wrote output (stuck detection and the pane's idle time).
    last_output: float | None = None
    #: Output lines the agent wrote so far.
    lines: int = 0
    #: The agent's last output lines (see TAIL_LINES).
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    #: The agent's last stderr lines (see STDERR_TAIL_LINES).
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    #: The agent's own progress report (step, todo counts), where its output format has one.
    progress: Progress | None = None
    #: What the agent is doing now, in its own output's words ("running tool Edit", "retrying API 3/10 after 529").
    activity: str = ""
    #: Process group of the running agent (killed on resume if the run died).
    pgid: int | None = None
    #: The agent runs (or ran) in tuiorch's sandbox: only its worktree and branch writable.
    confined: bool = False
    #: The attempt's log file.
    log_path: Path | None = None
    #: Commit of base the attempt started from.
    base_sha: str | None = None
    #: The branch tip when the agent finished (finds the merge commit after a crash).
    tip: str | None = None
    #: Tokens and cost of every agent run for this task so far (attempts and resolver runs), where reported.
    usage: Usage | None = None

    # ---- what a retry remembers
    #: The branch holds earlier work to build on (a retry, or a run interrupted by a crash).
    keep_commits: bool = False
    #: Why the attempt the user retried stopped: the next attempt continues its work on the branch.
    continued: str = ""
    #: Why the last attempt failed: what the retry prompt tells the agent.
    last_failure: str = ""
    #: What the user asked the agent to change when sending a finished task back from review.
    review_note: str = ""
    #: Times the task was dropped and redone from a fresh main after a conflict.
    requeues: int = 0
    #: Resolver-agent attempts spent on the current conflict.
    resolve_attempts: int = 0
    #: Times the agent was sent back to fix a failed [merge] check, and that check's last output.
    check_fixes: int = 0
    check_output: str = ""

    # ---- the merge
    #: The merge commit on base, once merged.
    commit: str | None = None
    #: A merge commit that passed the check but could not land yet (merge_blocked).
    prepared: PreparedMerge | None = None

    # ---- a conflict
    #: Paths that conflict with base.
    paths: tuple[str, ...] = ()
    #: How each conflicting path conflicts (path -> kind, e.g. "both modified").
    kinds: dict[str, str] = field(default_factory=dict)
    #: Paths a test-merge of the running branch predicts to conflict.
    predicted: tuple[str, ...] = ()

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started
