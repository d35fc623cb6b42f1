"""One attempt at a task: workspace → agent → result on the task branch, judged as an `AttemptOutcome`.

The stage starts the agent through a `Runner`, waits for it, collects its result and gives the
workspace back. It changes no run state: no status, no event, no save, no slot or queue order. The
engine applies the outcome. What happens live (output, progress, stuck) reaches the engine through
the `AgentHooks` in the spec's run, and the two moments the engine must act on at once through
`AttemptHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal, Protocol

from tuiorch.agent import AgentExit
from tuiorch.gitops import GitError, UncommittedWork
from tuiorch.runners.base import AgentHandle, AgentHooks, AgentSpec, Attachment, Runner, StartFailed

#: How an attempt ended. finished: commits on the branch, ready to land. empty: a clean exit without
#: any commit. failed: no retry left, or a failure a retry cannot fix (setup, a refused command, git).
#: cancelled: the user (or shutdown) stopped it. retry: it failed and may be run again.
AttemptEnd = Literal["finished", "empty", "failed", "cancelled", "retry"]


@dataclass(frozen=True)
class AttemptOutcome:
    end: AttemptEnd
    #: Why it failed, for the user (the pane's note, the task_failed event); "" otherwise.
    reason: str = ""
    #: How the agent exited; None when no agent ran (setup failed, the command was refused).
    exit: AgentExit | None = None
    #: The task branch's tip once the result is in (finished).
    tip: str | None = None
    #: The attempt's work could not be committed: its workspace is kept here, out of the pool.
    kept: str | None = None

    @property
    def failed(self) -> bool:
        return self.end in ("failed", "retry")


class AttemptHost(Protocol):
    """The engine's part in an attempt, called at the two moments it must act on."""

    def ready(self, handle: AgentHandle) -> None:
        """The workspace is prepared and the agent about to run (mark it running, show where).
        May raise CancelledError to stop here (the run is being stopped)."""
        ...

    def ended(self, exit_: AgentExit) -> str | None:
        """The agent has ended: take what its output held back; return why it failed, or None when
        it succeeded (its exit and its own words decide)."""
        ...


@dataclass(frozen=True)
class AttemptPlan:
    """What the stage needs besides the spec."""

    #: Message of the commit of what the agent left uncommitted when it succeeded.
    commit_message: str
    #: Message of that commit when it failed or was stopped (work in progress a retry builds on).
    wip_message: str
    #: A failure may be retried (attempts left).
    may_retry: bool


async def run_attempt(
    runner: Runner,
    spec: AgentSpec,
    hooks: AgentHooks,
    host: AttemptHost,
    plan: AttemptPlan,
    resume: Attachment | None = None,
) -> AttemptOutcome:
    """Run one attempt to its outcome. CancelledError goes through (the agent's tree killed).

    resume: a run of this attempt that outlived the tuiorch that started it: the attempt takes it up
    (`Runner.reattach`) instead of starting an agent. If it is gone by now, what it left is brought
    into the branch (`Runner.clean_up`) and a new agent starts on top of it."""
    try:
        handle, reattached = await _handle(runner, spec, hooks, plan, resume)
    except StartFailed as exc:
        return AttemptOutcome("failed", reason=exc.reason)
    except (GitError, OSError) as exc:
        return AttemptOutcome("failed", reason=str(exc))
    try:
        await _ready(host, handle, hooks, reattached=reattached)
        exit_ = await handle.wait()
        failure = host.ended(exit_)
        if failure is None and not exit_.cancelled:
            return await _land_result(handle, plan, exit_)
        return await _keep_what_was_done(handle, plan, exit_, failure or "")
    except UncommittedWork as exc:
        return AttemptOutcome("failed", reason=str(exc), kept=str(exc.worktree))
    except asyncio.CancelledError:
        raise
    except BaseException:
        with contextlib.suppress(GitError, OSError):
            await handle.release()
        raise


async def _ready(host: AttemptHost, handle: AgentHandle, hooks: AgentHooks, *, reattached: bool) -> None:
    """Tell the engine the agent is about to run; a re-attached run is saved again (a second crash
    finds it too)."""
    try:
        host.ready(handle)
    except asyncio.CancelledError:  # stopped before the agent started: its workspace goes back
        if reattached:
            handle.cancel()
        with contextlib.suppress(GitError, OSError):
            await handle.release()
        raise
    if reattached:
        hooks.on_started(handle.attachment())


async def _handle(
    runner: Runner, spec: AgentSpec, hooks: AgentHooks, plan: AttemptPlan, resume: Attachment | None
) -> tuple[AgentHandle, bool]:
    """The re-attached run of `resume` (and True), else a newly started one (and False)."""
    if resume is not None:
        handle = await runner.reattach(resume, spec, hooks)
        if handle is not None:
            return handle, True
        await runner.clean_up(resume, leftovers_message=plan.wip_message)
    return await runner.start(spec, hooks), False


async def _land_result(handle: AgentHandle, plan: AttemptPlan, exit_: AgentExit) -> AttemptOutcome:
    """The agent succeeded: its leftovers committed, its commits on the branch; empty without any."""
    try:
        collected = await handle.collect(plan.commit_message, failed=False)
    except UncommittedWork:
        raise
    except GitError as exc:
        with contextlib.suppress(GitError, OSError):
            await handle.release()
        return AttemptOutcome("failed", reason=str(exc))  # git's failure, not the agent's
    await handle.release()
    if not collected.has_new_commits:
        return AttemptOutcome("empty", reason="agent exited 0 without changing anything", exit=exit_)
    return AttemptOutcome("finished", exit=exit_, tip=collected.tip)


async def _keep_what_was_done(
    handle: AgentHandle, plan: AttemptPlan, exit_: AgentExit, failure: str
) -> AttemptOutcome:
    """A failed or stopped attempt's edits are kept on its branch: a retry builds on them."""
    await handle.collect(plan.wip_message, failed=True)
    await handle.release()
    if exit_.cancelled:
        return AttemptOutcome("cancelled", reason="cancelled", exit=exit_)
    return AttemptOutcome("retry" if plan.may_retry else "failed", reason=failure, exit=exit_)
