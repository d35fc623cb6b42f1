"""The pool loop: owns the run state, starts tasks in free slots, and is the one writer of a task's status.

Every status change goes through `Orchestrator._transition`, which checks the move against
`tuiorch.model.status.TRANSITIONS`, saves the run state and then emits the event, so a front end never
shows something a crash could forget. The rest of running the pool lives in rooms of its own
(`tuiorch.engine`), each handed this orchestrator as a narrow `Hub`: an attempt in its slot
(`engine.attempts`), landing on main (`engine.landings`), the resolver agent (`engine.resolver_agent`),
the user's conflict triage (`engine.triage`), queue commands (`engine.commands`), saving and resuming
(`engine.persistence`, `engine.saved_run`), agents' output (`engine.agent_io`) and predicted conflicts
(`engine.predictions`). The public commands here forward to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tuiorch import events as ev
from tuiorch import report
from tuiorch.agent_output import Usage
from tuiorch.config import Config
from tuiorch.diffs import TaskDiff
from tuiorch.engine.agent_io import AgentIO
from tuiorch.engine.agents import set_up_agents
from tuiorch.engine.attempts import Attempts
from tuiorch.engine.commands import Commands
from tuiorch.engine.hub import CommandError
from tuiorch.engine.landings import Landings
from tuiorch.engine.persistence import Persistence
from tuiorch.engine.predictions import Predictions
from tuiorch.engine.resolver_agent import ResolverAgent
from tuiorch.engine.saved_run import SavedRun
from tuiorch.engine.triage import Triage
from tuiorch.git import DIFF_MAX_LINES, GitRepo
from tuiorch.hunks import Resolution
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import IN_SLOT, TaskStatus, check_transition
from tuiorch.queue import QueueRow, RunQueue
from tuiorch.runlock import RunLock
from tuiorch.runners.base import AgentHandle, Runner
from tuiorch.state import log_dir
from tuiorch.steps.landing import Lander, RetryPolicy
from tuiorch.steps.predictor import ConflictPredictor
from tuiorch.steps.resolution import ConflictResolver, Side
from tuiorch.tasks import Priority, Task

__all__ = ["CommandError", "Orchestrator", "TaskRecord"]


class Orchestrator:
    """One run of the pool over a repository: its state, its loop, the one writer of a task's status, and
    the commands its front end calls."""

    def __init__(
        self,
        root: Path,
        config: Config,
        tasks: list[Task],
        sink: Callable[[ev.Event], None],
        *,
        task_file: Path | None = None,
        keep_alive: bool = False,
        agent_runner: Runner | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.config = config
        self.sink = sink
        self.task_file = task_file
        self.keep_alive = keep_alive
        self.git = GitRepo(self.root)
        self.logs = log_dir(self.git.git_dir)
        agents = set_up_agents(config, self.root, self.git, self.git.git_dir / "tuiorch", agent_runner)
        self.preset, self.brief, self.agent_runner = agents.preset, agents.brief, agents.runner
        self.confiner, self._confine_warning = agents.confiner, agents.confine_warning
        self.queue = RunQueue(tasks)
        self.workers = config.workers
        self.paused = False
        self.slots: list[str | None] = [None] * self.workers
        #: The task each slot was given last, kept after it leaves the slot (a front end shows it there
        #: until the next one starts, even one that came and went between two of its refreshes).
        self.last_in_slot: dict[int, str] = {}
        self._wake = asyncio.Event()
        #: Lands finished branches one at a time (the merge lock, the check gate, compare-and-swap).
        self.lander = Lander(self.git, RetryPolicy())
        #: Test-merges running branches against base (on a git handle of its own: reads only).
        self.predictor = ConflictPredictor(GitRepo(self.root), config.base)
        #: The git side of conflict resolution, by the resolver agent or in the conflict modal.
        self.resolver = ConflictResolver(self.git, config.base)
        #: The asyncio task at work on each task that has one: its attempt, its merge or its resolution.
        self._runners: dict[str, asyncio.Task[None]] = {}
        #: The running agent of each task that has one (cancel and stop reach it here).
        self._agents: dict[str, AgentHandle] = {}
        self._stopping = False
        self._base_at_start: str | None = None
        self._set_up_rooms()
        self.saved_run.restore()

    def _set_up_rooms(self) -> None:
        """The rooms of the engine, each handed this orchestrator as its `Hub`."""
        self.agent_io = AgentIO(self)
        self.predictions = Predictions(self)
        self.persistence = Persistence(self)
        self.saved_run = SavedRun(self)
        self.landings = Landings(self, self.agent_io, self.predictions)
        self.attempts = Attempts(self, self.agent_io, self.landings)
        self.resolver_agent = ResolverAgent(self, self.agent_io, self.landings)
        self.triage = Triage(self, self.landings, self.resolver_agent)
        self.commands = Commands(self, self.landings, self.persistence)

    # ------------------------------------------------------------------ views

    @property
    def base(self) -> str:
        return self.config.base

    @property
    def records(self) -> dict[str, TaskRecord]:
        return self.queue.records

    @property
    def order(self) -> list[str]:
        return self.queue.order

    @property
    def _version(self) -> int:
        """Bumped by every change the queue view depends on (statuses, order, pool, predictions)."""
        return self.queue.version

    @_version.setter
    def _version(self, value: int) -> None:
        self.queue.version = value

    def queue_view(self) -> list[QueueRow]:
        """Every task not started yet, in the user's order, with why it waits (cached by the queue)."""
        return self.queue.view(free_slots=self._free_slots(), paused=self.paused)

    def main_commits(self) -> list[tuple[str, str]]:
        """(short sha, subject) of the commits that landed on base during this run."""
        if self._base_at_start is None:
            return []
        return self.git.commits_since(self.base, self._base_at_start)

    def running_count(self) -> int:
        return self.queue.count_in(IN_SLOT)

    def has_active_work(self) -> bool:
        return self.queue.has_active_work()

    def is_busy(self, task_id: str) -> bool:
        """A merge or the resolver agent is at work on the task (its conflict is not the user's to touch)."""
        return task_id in self._runners

    def summary(self) -> ev.RunFinished:
        """Every task with its state now, and the commits that landed on base this run."""
        return report.from_records(self.queue.in_order(), self.main_commits())

    def total_usage(self) -> Usage | None:
        """Tokens and cost of the whole run so far; None when no agent reported any."""
        return report.total_usage(rec.usage for rec in self.records.values())

    # ------------------------------------------------------------------ run loop

    async def run(self) -> ev.RunFinished:
        """Run the pool until nothing can progress (or stop()). Raises RunLockError if another runs."""
        run_lock = RunLock(self.git.git_dir)
        run_lock.acquire()
        try:
            return await self._run()
        finally:
            run_lock.release()

    async def _run(self) -> ev.RunFinished:
        await self._start_up()
        flusher = asyncio.create_task(self.agent_io.flush_loop())
        predictor = asyncio.create_task(self.predictions.loop())
        try:
            await self._loop()
        finally:
            await self._stop_runners()
            flusher.cancel()
            predictor.cancel()
            self.agent_io.flush()
            await self._cleanup_slots()
        self.persistence.drop_pending()
        summary = self.summary()
        self._persist(finished=not self._stopping or not self.has_active_work())
        self.sink(summary)
        return summary

    async def _start_up(self) -> None:
        """Before the first task starts: what a dead run left cleaned up, the saved tasks reconciled."""
        saved_run = self.saved_run
        await saved_run.clean_up_after_dead_run()
        self._base_at_start = await asyncio.to_thread(self.git.tip, self.base)
        for warning in (saved_run.notice, self._confine_warning):
            if warning:
                self._emit(ev.Notice(message=warning, level="warning"))
        await asyncio.to_thread(self.git.prune)
        await saved_run.reconcile()
        for rec in saved_run.merges:
            if not self.config.merge.auto:
                rec.reason = "finished; waiting for your word to merge"
                continue
            self.landings.start_merge(rec)
        saved_run.merges.clear()

    async def _loop(self) -> None:
        while True:
            self._start_eligible()
            if self._stopping and not self._runners:
                return
            # Nothing running and nothing startable: nothing will change without the user. A merge
            # blocked by the user's files is different: it is retried until they commit or stash.
            if not self.keep_alive and not self._runners and not self._blocked():
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.lander.policy.blocked_interval)
            except TimeoutError:
                await self.landings.retry_blocked()

    def stop(self) -> None:
        """Cancel every agent and end run() (also with keep_alive).

        Merges under way are let finish: cancelling one mid-thread could land a merge
        commit that the run state never hears of.
        """
        self._stopping = True
        for agent in self._agents.values():
            agent.cancel()
        self._wake.set()

    def _free_slots(self) -> int:
        return sum(1 for i, s in enumerate(self.slots) if s is None and i < self.workers)

    def _blocked(self) -> bool:
        return self.queue.count_in({TaskStatus.BLOCKED}) > 0

    def _start_eligible(self) -> None:
        if self.paused or self._stopping:
            return
        free = self._free_slots()
        if free <= 0:
            return
        for task in self.queue.pick(free):
            slot = next(i for i, s in enumerate(self.slots) if s is None and i < self.workers)
            self.attempts.start(self.records[task.id], slot)

    async def _stop_runners(self) -> None:
        for runner in self._runners.values():
            runner.cancel()
        if self._runners:
            await asyncio.gather(*self._runners.values(), return_exceptions=True)
        self._runners.clear()

    async def _cleanup_slots(self) -> None:
        if not self.config.slots.keep_at_end:
            await self.agent_runner.close()
            check = self.landings.check_worktree()
            if check.exists():
                await asyncio.to_thread(self.git.remove_worktree, check)
            await asyncio.to_thread(self.git.prune)
        await asyncio.to_thread(self.git.maintain)

    # ------------------------------------------------------------------ transitions

    def _transition(
        self, rec: TaskRecord, status: TaskStatus, event: ev.Event | None = None, *, restoring: bool = False
    ) -> None:
        """The only writer of a task's status: check the move, save the run state, then tell the front ends.

        Saving comes first, so a front end never shows a status a crash could forget. `event` is what the
        move means (a merge, a conflict); without one the queue view is told to refresh. An illegal move
        raises IllegalTransition (see `tuiorch.model.status.TRANSITIONS`).

        `restoring`: the run is rebuilding its queue from the saved state, before anything runs (the
        record is fresh, so queued). Only the statuses in `RESTORABLE` are allowed. Without an event
        nothing is saved or emitted here: the rebuild saves once at its end, because saving mid-way
        would write over the state it still reads.
        """
        check_transition(rec.task.id, rec.status, status, restoring=restoring)
        rec.status = status
        if restoring and event is None:
            return
        self._persist()
        self._emit(event if event is not None else ev.QueueChanged())

    def _requeue_front(self, rec: TaskRecord) -> None:
        """Queue the task again, first in line (a retry, a task sent back, a requeue after a conflict)."""
        self.queue.to_front(rec.task.id)
        rec.slot = None
        self._transition(rec, TaskStatus.QUEUED, ev.TaskQueued(task=rec.task.id, reason=rec.reason))
        self._emit(ev.QueueChanged())
        self._wake.set()

    def _emit(self, event: ev.Event) -> None:
        if not isinstance(event, ev.TaskOutput | ev.TaskProgress):
            self._version += 1  # every other event may change a queue row or a wait reason
        self.sink(event)

    def _persist(self, *, finished: bool = False) -> None:
        self.persistence.save(finished=finished)

    def _record(self, task_id: str) -> TaskRecord:
        try:
            return self.records[task_id]
        except KeyError:
            raise CommandError(f"no task {task_id!r}") from None

    async def _resolve_with_agent(self, rec: TaskRecord) -> None:
        await self.resolver_agent.resolve(rec)

    # ------------------------------------------------------------------ commands (engine.commands)

    def refusal(self, command: str, task_id: str | None) -> str | None:
        """Why `command` does not apply to `task_id` now, in the user's words; None if it does."""
        return self.commands.refusal(command, task_id)

    def set_workers(self, n: int) -> None:
        self.commands.set_workers(n)

    def pause(self) -> None:
        self.commands.pause()

    def resume(self) -> None:
        self.commands.resume()

    def cancel(self, task_id: str) -> None:
        self.commands.cancel(task_id)

    def retry(self, task_id: str) -> None:
        self.commands.retry(task_id)

    def approve_merge(self, task_id: str) -> None:
        self.commands.approve_merge(task_id)

    def send_back(self, task_id: str, note: str) -> None:
        self.commands.send_back(task_id, note)

    async def requeue(self, task_id: str) -> None:
        await self.commands.requeue(task_id)

    def move(self, task_id: str, delta: int) -> None:
        self.commands.move(task_id, delta)

    def move_top(self, task_id: str) -> Priority:
        return self.commands.move_top(task_id)

    def set_priority(self, task_id: str, priority: Priority) -> None:
        self.commands.set_priority(task_id, priority)

    def toggle_hold(self, task_id: str) -> None:
        self.commands.toggle_hold(task_id)

    def add_task(self, task: Task) -> None:
        self.commands.add_task(task)

    def reload_tasks(self, tasks: list[Task]) -> None:
        self.commands.reload_tasks(tasks)

    # ------------------------------------------------------------------ conflicts and review (engine.triage)

    async def hand_to_agent(self, task_id: str) -> None:
        await self.resolver_agent.hand_to_agent(task_id)

    def conflict_sides(self, task_id: str, path: str) -> tuple[str | None, str | None, str | None]:
        return self.triage.conflict_sides(task_id, path)

    async def prepare_manual(self, task_id: str) -> Path:
        return await self.triage.prepare_manual(task_id)

    async def take_side(self, task_id: str, path: str, side: Side) -> None:
        await self.triage.take_side(task_id, path, side)

    async def mark_resolved(self, task_id: str, path: str) -> None:
        await self.triage.mark_resolved(task_id, path)

    async def finish_resolution(self, task_id: str) -> None:
        await self.triage.finish_resolution(task_id)

    async def conflict_resolution(self, task_id: str) -> Resolution:
        return await self.triage.conflict_resolution(task_id)

    async def resolve_conflict(self, task_id: str, resolution: Resolution) -> None:
        await self.triage.resolve_conflict(task_id, resolution)

    async def task_diff(self, task_id: str, *, max_lines: int = DIFF_MAX_LINES) -> TaskDiff:
        return await self.triage.task_diff(task_id, max_lines=max_lines)
