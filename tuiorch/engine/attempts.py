"""One task in its slot: the attempt stage run with the engine's hooks, and its outcome applied to the
run (running, stuck, a retry queued, failed, empty, finished and handed to the landing)."""

from __future__ import annotations

import asyncio
import functools
import shlex
import time
from pathlib import Path

from tuiorch import events as ev
from tuiorch.agent import AgentExit
from tuiorch.agent_output import OutputParser, make_output_parser
from tuiorch.config import branch_name, output_format
from tuiorch.engine.agent_io import AgentIO
from tuiorch.engine.hub import Hub
from tuiorch.engine.landings import Landings
from tuiorch.git import GitError
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import IN_SLOT, TaskStatus
from tuiorch.runners.base import AgentHandle, AgentSpec
from tuiorch.steps.attempt import AttemptOutcome, AttemptPlan, run_attempt
from tuiorch.verdict import failure_reason, succeeded


class Attempts:
    def __init__(self, hub: Hub, agent_io: AgentIO, landings: Landings) -> None:
        self.hub = hub
        self.agent_io = agent_io
        self.landings = landings

    def start(self, rec: TaskRecord, slot: int) -> None:
        """Put the task in `slot` and run it there, as one of the pool's runners."""
        hub = self.hub
        hub.slots[slot] = rec.task.id
        hub.last_in_slot[slot] = rec.task.id
        rec.slot = slot
        hub._transition(rec, TaskStatus.STARTING)
        hub._runners[rec.task.id] = asyncio.create_task(self.run_task(rec, slot), name=f"task-{rec.task.id}")

    async def run_task(self, rec: TaskRecord, slot: int) -> None:
        """One attempt at the task in `slot`, then what its outcome calls for (a merge, a retry ...)."""
        hub, task = self.hub, rec.task
        try:
            outcome = await self._attempt(rec, slot)
            await self._apply(rec, slot, outcome)
        except asyncio.CancelledError:
            if rec.status in IN_SLOT:
                rec.reason = "cancelled"
                hub._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            raise
        except (GitError, OSError) as exc:
            self._fail_after_error(rec, str(exc))
        except Exception as exc:  # a bug must fail one task, not take the pool down
            self._fail_after_error(rec, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            hub._agents.pop(task.id, None)
            self.free_slot(rec, slot)
            hub._runners.pop(task.id, None)
            hub._wake.set()

    def free_slot(self, rec: TaskRecord, slot: int) -> None:
        hub = self.hub
        if slot < len(hub.slots) and hub.slots[slot] == rec.task.id:
            hub.slots[slot] = None
        # A shrunk pool drops its trailing slots once they are empty.
        while len(hub.slots) > hub.workers and hub.slots[-1] is None:
            hub.slots.pop()
        hub._wake.set()

    async def _attempt(self, rec: TaskRecord, slot: int) -> AttemptOutcome:
        hub, task = self.hub, rec.task
        config = hub.config
        rec.attempts += 1
        rec.started = time.time()
        rec.ended = None
        rec.progress = None
        rec.reason = ""
        rec.branch = branch_name(config, task.id, hub.root.name)
        rec.log_path = hub.logs / f"{task.id}.log"
        parser = make_output_parser(output_format(config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        spec = AgentSpec(
            task_id=task.id,
            kind="task",
            attempt=rec.attempts,
            slot=slot,
            branch=rec.branch,
            base=hub.base,
            # An earlier attempt's commits are kept: the retry builds on them.
            keep_commits=rec.attempts > 1 or rec.keep_commits,
            command=hub.brief.task_command(rec),
            log_path=rec.log_path,
            env=hub.brief.env(rec),
            setup=tuple(shlex.split(config.slots.setup)) or None,
            timeout=config.agent.timeout or None,
            stuck_after=config.agent.stuck_after or None,
        )
        plan = AttemptPlan(
            commit_message=hub.brief.commit_message(task),
            wip_message=f"wip: {task.title} (attempt {rec.attempts} stopped)",
            may_retry=rec.attempts <= config.agent.retries,
        )
        host = _AttemptHost(hub, self.agent_io, rec, slot, parser)
        resume, rec.resume = rec.resume, None  # a run that outlived the last tuiorch: taken up
        return await run_attempt(hub.agent_runner, spec, host.hooks, host, plan, resume)

    async def _apply(self, rec: TaskRecord, slot: int, outcome: AttemptOutcome) -> None:
        """The engine's side of an attempt's outcome: the transition, and a merge when it finished."""
        hub, task = self.hub, rec.task
        rec.holds_worktree = False
        if outcome.kept is not None:
            rec.worktree = Path(outcome.kept)
        if outcome.end == "cancelled":
            rec.reason = "cancelled"
            hub._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            return
        if outcome.exit is not None and outcome.failed:
            rec.last_failure = outcome.reason
            rec.activity = ""
        if outcome.end == "retry":
            rec.reason = f"attempt {rec.attempts} failed: {outcome.reason}; retrying"
            hub._requeue_front(rec)
            return
        if outcome.end == "failed":
            self._failed(rec, outcome)
            return
        await self._finished(rec, slot, outcome)

    def _failed(self, rec: TaskRecord, outcome: AttemptOutcome) -> None:
        exit_, task_id = outcome.exit, rec.task.id
        rec.reason = outcome.reason
        rec.ended = rec.ended or time.time()
        failed = ev.TaskFailed(task=task_id, reason=outcome.reason)
        if exit_ is not None:
            failed = ev.TaskFailed(task=task_id, reason=outcome.reason, exit=exit_.code, signal=exit_.signal)
        self.hub._transition(rec, TaskStatus.FAILED, failed)

    async def _finished(self, rec: TaskRecord, slot: int, outcome: AttemptOutcome) -> None:
        """The agent succeeded: empty without commits, else finished and merged (or waiting for the word)."""
        hub, task = self.hub, rec.task
        rec.review_note = ""
        rec.tip = outcome.tip
        rec.activity = ""
        if outcome.end == "empty":
            rec.reason = outcome.reason
            hub._transition(rec, TaskStatus.EMPTY, ev.TaskEmpty(task=task.id))
            assert rec.branch is not None
            await asyncio.to_thread(functools.partial(hub.git.delete_branch, rec.branch, base=hub.base))
            return
        hub._transition(rec, TaskStatus.FINISHED)
        # The slot is free as soon as the branch holds the work: the merge needs no worktree.
        self.free_slot(rec, slot)
        if not hub.config.merge.auto:
            rec.reason = "finished; waiting for your word to merge"
            hub._persist()
            hub._emit(ev.Notice(message=f"task {task.id} finished; merge it when you are ready"))
            return
        await self.landings.merge(rec)

    def _fail_after_error(self, rec: TaskRecord, reason: str) -> None:
        if self.landings.merged_anyway(rec, reason):
            return
        rec.reason = reason
        rec.ended = rec.ended or time.time()
        rec.holds_worktree = False
        self.hub._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=rec.task.id, reason=reason))


class _AttemptHost:
    """The engine's part in one task attempt: the agent's hooks, and the transitions at its start
    and end (see steps.attempt.AttemptHost)."""

    def __init__(self, hub: Hub, agent_io: AgentIO, rec: TaskRecord, slot: int, parser: OutputParser) -> None:
        self.hub = hub
        self.agent_io = agent_io
        self.rec = rec
        self.slot = slot
        self.parser = parser
        self.feed = agent_io.feed(rec, parser)
        self.hooks = agent_io.hooks(rec, self.feed, on_stuck=self._stuck)

    def _stuck(self, idle: float) -> None:
        event = ev.TaskStuck(task=self.rec.task.id, idle_seconds=round(idle, 1))
        self.hub._transition(self.rec, TaskStatus.STUCK, event)

    def ready(self, handle: AgentHandle) -> None:
        hub, rec = self.hub, self.rec
        if hub._stopping:
            raise asyncio.CancelledError
        rec.worktree = Path(handle.workspace)
        rec.base_sha = handle.base_sha
        rec.holds_worktree = True
        rec.where, rec.confined = handle.where, handle.confined
        hub._agents[rec.task.id] = handle
        assert rec.branch is not None
        started = ev.TaskStarted(
            task=rec.task.id,
            slot=self.slot + 1,
            branch=rec.branch,
            worktree=handle.workspace,
            attempt=rec.attempts,
            confined=handle.confined,
        )
        hub._transition(rec, TaskStatus.RUNNING, started)

    def ended(self, exit_: AgentExit) -> str | None:
        hub, rec = self.hub, self.rec
        self.feed.finish()
        rec.ended = time.time()
        rec.pgid = None
        rec.attachment = None
        self.agent_io.flush()
        hub._emit(ev.TaskFinished(task=rec.task.id, exit=exit_.code, signal=exit_.signal, timed_out=exit_.timed_out))
        if succeeded(exit_, self.parser):
            return None
        return failure_reason(exit_, self.parser, list(rec.stderr_tail), hub.preset)
