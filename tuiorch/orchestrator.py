"""The pool loop: owns the run state, starts agents in slots, merges what they finish.

Every transition goes through `_transition`, which persists the run state and then
emits the event, so a front end never shows something a crash could forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tuiorch import events as ev
from tuiorch import report, state
from tuiorch.agent import AgentExit
from tuiorch.agent_command import AgentBrief
from tuiorch.agent_feed import AgentFeed
from tuiorch.agent_output import OutputParser, Usage, make_output_parser
from tuiorch.config import (
    CONFIG_FILE,
    Config,
    agent_argv,
    agent_preset,
    branch_name,
    output_format,
    worktree_dir,
)
from tuiorch.confine.attempts import Confiner
from tuiorch.confine.sandbox import confined_preset, decide
from tuiorch.diffs import TaskDiff
from tuiorch.git import (
    DIFF_MAX_LINES,
    GitError,
    GitRepo,
    PreparedMerge,
)
from tuiorch.hunks import Resolution
from tuiorch.model.record import TaskRecord
from tuiorch.model.status import (
    COMMANDS,
    IN_CONFLICT,
    IN_SLOT,
    TaskStatus,
    check_transition,
    command_refusal,
)
from tuiorch.prompt import RESOLVE_TEMPLATE, load_template
from tuiorch.queue import QueueError, QueueRow, RunQueue
from tuiorch.runlock import RunLock
from tuiorch.runners.base import AgentHandle, AgentHooks, AgentSpec, Attachment, Runner, StartFailed
from tuiorch.runners.factory import make_runner
from tuiorch.state import StateError, load_state, log_dir, save_state
from tuiorch.steps.attempt import AttemptOutcome, AttemptPlan, run_attempt
from tuiorch.steps.landing import (
    Lander,
    LandingHooks,
    LandingOutcome,
    LandingRequest,
    RetryPolicy,
    check_failed_action,
    conflict_action,
)
from tuiorch.steps.predictor import ConflictPredictor, RunningBranch
from tuiorch.steps.recovery import (
    MarkMerged,
    Requeue,
    ResumeMerge,
    SavedTask,
    TaskRecovery,
    end_dead_run,
    recover,
)
from tuiorch.steps.resolution import AttemptOutcome as ResolverOutcome
from tuiorch.steps.resolution import (
    AttemptStart,
    ConflictResolver,
    ResolutionError,
    Side,
    attempt_notice,
    gave_up_reason,
    resolution_message,
)
from tuiorch.tasks import Priority, Task
from tuiorch.verdict import failure_reason, succeeded

OUTPUT_FLUSH_SECONDS = 0.05
#: How often running branches are test-merged against main (only when a tip moved).
PREDICT_SECONDS = 0.5
#: Queue edits are saved this long after the last one (a burst of J/K presses is one save).
QUEUE_SAVE_DELAY = 0.3


class CommandError(Exception):
    """A UI command that does not apply to the task in its current state."""


class Orchestrator:
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
        self.state_dir = self.git.git_dir / "tuiorch"
        self.logs = log_dir(self.git.git_dir)
        self._set_up_agents(config, agent_runner)
        self.queue = RunQueue(tasks)
        self.workers = config.workers
        self.paused = False
        self.slots: list[str | None] = [None] * self.workers
        self._wake = asyncio.Event()
        #: Lands finished branches one at a time (the merge lock, the check gate, compare-and-swap).
        self.lander = Lander(self.git, RetryPolicy())
        #: Test-merges running branches against base (on a git handle of its own: reads only).
        self.predictor = ConflictPredictor(GitRepo(self.root), config.base)
        #: The git side of conflict resolution, by the resolver agent or in the conflict modal.
        self.resolver = ConflictResolver(self.git, config.base)
        self._runners: dict[str, asyncio.Task[None]] = {}
        #: The running agent of each task that has one (cancel and stop reach it here).
        self._agents: dict[str, AgentHandle] = {}
        self._pending_output: dict[str, list[str]] = {}
        self._stopping = False
        self._base_at_start: str | None = None
        self._restore_notice: str | None = None
        self._saved: dict | None = None
        self._resume_merges: list[TaskRecord] = []
        self._persist_handle: asyncio.TimerHandle | None = None
        self._restore_state()

    def _set_up_agents(self, config: Config, agent_runner: Runner | None) -> None:
        """What the run's agents are told (preset, templates, argv) and where they run (the runner)."""
        self.preset = agent_preset(config)
        # Agents on Ray nodes run unconfined: the sandbox is built for agents on this machine.
        confine = config.agent.confine if config.runner.kind == "local" else "off"
        confinement = decide(confine, config.agent.preset, config.agent.writable, self.root / CONFIG_FILE)
        #: Agents run in a bubblewrap sandbox that lets them change only their worktree and branch.
        self.confiner = Confiner(confinement.sandbox)
        self._confine_warning = confinement.warning
        self._argv_template = agent_argv(config)
        if self.confiner.on and config.agent.preset != "custom":
            self.preset = confined_preset(self.preset)
            self._argv_template = list(self.preset.argv)
        self.template = load_template(config.prompt_template, root=self.root)
        self.resolve_template = (
            load_template(config.resolve_template, root=self.root) if config.resolve_template else RESOLVE_TEMPLATE
        )
        self.brief = AgentBrief(config, self.preset, self.template, self.resolve_template, self._argv_template)
        self.agent_runner: Runner = agent_runner or make_runner(
            config,
            self.git,
            self.root,
            worktrees=self._worktree_dir,
            prompts=self.state_dir / "prompts",
            scratch=self.preset.scratch,
            programs=self._argv_template[:1],
            confiner=self.confiner,
        )

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
        if self._saved is not None and not self._saved.get("finished"):
            await self._clean_up_after_dead_run(self._saved)
        self._base_at_start = await asyncio.to_thread(self.git.tip, self.base)
        if self._restore_notice:
            self._emit(ev.Notice(message=self._restore_notice, level="warning"))
        if self._confine_warning:
            self._emit(ev.Notice(message=self._confine_warning, level="warning"))
        await asyncio.to_thread(self.git.prune)
        await self._reconcile()
        for rec in self._resume_merges:
            if not self.config.merge.auto:
                rec.reason = "finished; waiting for your word to merge"
                continue
            self._start_merge_runner(rec)
        self._resume_merges.clear()
        flusher = asyncio.create_task(self._flush_output_loop())
        predictor = asyncio.create_task(self._predict_conflicts_loop())
        try:
            while True:
                self._start_eligible()
                if self._stopping and not self._runners:
                    break
                # Nothing running and nothing startable: nothing will change without the user. A merge
                # blocked by the user's files is different: it is retried until they commit or stash.
                if not self.keep_alive and not self._runners and not self._blocked():
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.lander.policy.blocked_interval)
                except TimeoutError:
                    await self._retry_blocked_merges()
        finally:
            await self._stop_runners()
            flusher.cancel()
            predictor.cancel()
            self._flush_output()
            await self._cleanup_slots()
        if self._persist_handle is not None:
            self._persist_handle.cancel()
            self._persist_handle = None
        summary = self.summary()
        self._persist(finished=not self._stopping or not self.has_active_work())
        self.sink(summary)
        return summary

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
            self.slots[slot] = task.id
            rec = self.records[task.id]
            rec.slot = slot
            self._transition(rec, TaskStatus.STARTING)
            self._runners[task.id] = asyncio.create_task(self._run_task(rec, slot), name=f"task-{task.id}")

    async def _stop_runners(self) -> None:
        for runner in self._runners.values():
            runner.cancel()
        if self._runners:
            await asyncio.gather(*self._runners.values(), return_exceptions=True)
        self._runners.clear()

    # ------------------------------------------------------------------ one task

    def _worktree_dir(self, task_id: str = "") -> Path:
        return worktree_dir(self.config, self.root, task_id)

    def _branch_name(self, task: Task) -> str:
        return branch_name(self.config, task.id, self.root.name)

    async def _run_task(self, rec: TaskRecord, slot: int) -> None:
        """One attempt at the task in `slot`, then what its outcome calls for (a merge, a retry ...)."""
        task = rec.task
        try:
            outcome = await self._attempt(rec, slot)
            await self._apply_attempt(rec, slot, outcome)
        except asyncio.CancelledError:
            if rec.status in IN_SLOT:
                rec.reason = "cancelled"
                self._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            raise
        except (GitError, OSError) as exc:
            self._fail_after_error(rec, str(exc))
        except Exception as exc:  # a bug must fail one task, not take the pool down
            self._fail_after_error(rec, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._agents.pop(task.id, None)
            self._free_slot(rec, slot)
            self._runners.pop(task.id, None)
            self._wake.set()

    def _free_slot(self, rec: TaskRecord, slot: int) -> None:
        if slot < len(self.slots) and self.slots[slot] == rec.task.id:
            self.slots[slot] = None
        # A shrunk pool drops its trailing slots once they are empty.
        while len(self.slots) > self.workers and self.slots[-1] is None:
            self.slots.pop()
        self._wake.set()

    async def _attempt(self, rec: TaskRecord, slot: int) -> AttemptOutcome:
        task = rec.task
        rec.attempts += 1
        rec.started = time.time()
        rec.ended = None
        rec.progress = None
        rec.reason = ""
        rec.branch = self._branch_name(task)
        rec.log_path = self.logs / f"{task.id}.log"
        parser = make_output_parser(output_format(self.config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        spec = AgentSpec(
            task_id=task.id,
            kind="task",
            attempt=rec.attempts,
            slot=slot,
            branch=rec.branch,
            base=self.base,
            # An earlier attempt's commits are kept: the retry builds on them.
            keep_commits=rec.attempts > 1 or rec.keep_commits,
            command=self.brief.task_command(rec),
            log_path=rec.log_path,
            env=self.brief.env(rec),
            setup=tuple(shlex.split(self.config.slots.setup)) or None,
            timeout=self.config.agent.timeout or None,
            stuck_after=self.config.agent.stuck_after or None,
        )
        plan = AttemptPlan(
            commit_message=self._commit_message(task),
            wip_message=f"wip: {task.title} (attempt {rec.attempts} stopped)",
            may_retry=rec.attempts <= self.config.agent.retries,
        )
        host = _AttemptHost(self, rec, slot, parser)
        return await run_attempt(self.agent_runner, spec, host.hooks, host, plan)

    async def _apply_attempt(self, rec: TaskRecord, slot: int, outcome: AttemptOutcome) -> None:
        """The engine's side of an attempt's outcome: the transition, and a merge when it finished."""
        task = rec.task
        rec.holds_worktree = False
        if outcome.kept is not None:
            rec.worktree = Path(outcome.kept)
        if outcome.end == "cancelled":
            rec.reason = "cancelled"
            self._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            return
        if outcome.exit is not None and outcome.failed:
            rec.last_failure = outcome.reason
            rec.activity = ""
        if outcome.end == "retry":
            rec.reason = f"attempt {rec.attempts} failed: {outcome.reason}; retrying"
            self._requeue_front(rec)
            return
        if outcome.end == "failed":
            exit_ = outcome.exit
            rec.reason = outcome.reason
            rec.ended = rec.ended or time.time()
            failed = ev.TaskFailed(task=task.id, reason=outcome.reason)
            if exit_ is not None:
                failed = ev.TaskFailed(task=task.id, reason=outcome.reason, exit=exit_.code, signal=exit_.signal)
            self._transition(rec, TaskStatus.FAILED, failed)
            return
        await self._finished(rec, slot, outcome)

    async def _finished(self, rec: TaskRecord, slot: int, outcome: AttemptOutcome) -> None:
        """The agent succeeded: empty without commits, else finished and merged (or waiting for the word)."""
        task = rec.task
        rec.review_note = ""
        rec.tip = outcome.tip
        rec.activity = ""
        if outcome.end == "empty":
            rec.reason = outcome.reason
            self._transition(rec, TaskStatus.EMPTY, ev.TaskEmpty(task=task.id))
            assert rec.branch is not None
            await asyncio.to_thread(functools.partial(self.git.delete_branch, rec.branch, base=self.base))
            return
        self._transition(rec, TaskStatus.FINISHED)
        # The slot is free as soon as the branch holds the work: the merge needs no worktree.
        self._free_slot(rec, slot)
        if not self.config.merge.auto:
            rec.reason = "finished; waiting for your word to merge"
            self._persist()
            self._emit(ev.Notice(message=f"task {task.id} finished; merge it when you are ready"))
            return
        await self._merge(rec)

    async def approve_merge(self, task_id: str) -> None:
        """With [merge] auto = false: the user's word to merge a finished task."""
        rec = self._record(task_id)
        if rec.status is not TaskStatus.FINISHED:
            raise CommandError(self.refusal("merge", task_id) or f"task {task_id} is not waiting to be merged")
        self._start_merge_runner(rec)

    def _start_merge_runner(self, rec: TaskRecord) -> None:
        self._spawn(rec, "merge", self._merge)

    def _spawn(self, rec: TaskRecord, kind: str, work: Callable[[TaskRecord], Awaitable[None]]) -> None:
        """Run merge or resolve work for a task outside the pool loop, as one of its runners.

        A git error ends it as the user would expect: a merge that cannot be done fails the task; a
        resolution that cannot be done leaves the conflict (and the branch) for the user.
        """
        task_id = rec.task.id
        if task_id in self._runners:
            raise CommandError(f"task {task_id} is busy")

        async def run() -> None:
            try:
                await work(rec)
            except GitError as exc:
                if self._merged_anyway(rec, str(exc)):
                    pass
                elif kind == "merge":
                    rec.reason = str(exc)
                    self._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=task_id, reason=str(exc)))
                else:
                    rec.reason = str(exc)
                    self._transition(
                        rec, TaskStatus.CONFLICT, ev.ConflictFound(task=task_id, paths=rec.paths, kinds=dict(rec.kinds))
                    )
            finally:
                self._runners.pop(task_id, None)
                self._wake.set()

        self._runners[task_id] = asyncio.create_task(run(), name=f"{kind}-{task_id}")

    def _merged_anyway(self, rec: TaskRecord, error: str) -> bool:
        """A git error after the merge landed (its branch could not be deleted) does not undo the merge:
        the task stays merged and the user is told. True if that is the case."""
        if rec.status is not TaskStatus.MERGED:
            return False
        self._emit(ev.Notice(message=f"task {rec.task.id} is merged, but then: {error}", level="warning"))
        return True

    def _fail_after_error(self, rec: TaskRecord, reason: str) -> None:
        if self._merged_anyway(rec, reason):
            return
        rec.reason = reason
        rec.ended = rec.ended or time.time()
        rec.holds_worktree = False
        self._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=rec.task.id, reason=reason))

    def _agent_feed(self, rec: TaskRecord, parser: OutputParser) -> AgentFeed:
        """The agent's output into the record and the pane; output from a stuck agent means it runs again."""
        return AgentFeed(rec, parser, functools.partial(self._show, rec.task.id), self._emit, functools.partial(self._unstuck, rec))

    def _show(self, task_id: str, lines: list[str]) -> None:
        """Lines for the task's pane, emitted in batches by the flusher."""
        self._pending_output.setdefault(task_id, []).extend(lines)

    def _unstuck(self, rec: TaskRecord) -> None:
        if rec.status is TaskStatus.STUCK:
            self._transition(rec, TaskStatus.RUNNING)

    def _placed(self, rec: TaskRecord, attachment: Attachment) -> None:
        # Saved with the next save: a run that dies while the workspace is prepared still finds it.
        rec.worktree = Path(attachment.workspace)

    def _record_pgid(self, rec: TaskRecord, attachment: Attachment) -> None:
        rec.pgid = attachment.pgid
        rec.attachment = attachment
        self._persist()

    def _notice(self, message: str) -> None:
        self._emit(ev.Notice(message=message))

    def _warning(self, message: str) -> None:
        self._emit(ev.Notice(message=message, level="warning"))

    def _commit_message(self, task: Task) -> str:
        return self.brief.commit_message(task)

    # ------------------------------------------------------------------ merging

    async def _merge(self, rec: TaskRecord, *, apply_policy: bool = True) -> None:
        """Land the task's branch on base; on conflict apply [merge] on_conflict (unless told not to)."""
        assert rec.branch is not None
        was_blocked_on = rec.paths if rec.status is TaskStatus.BLOCKED else None
        request = self._landing_request(rec, was_blocked_on)
        outcome = await self.lander.land(request, self._landing_hooks(rec, was_blocked_on))
        rec.prepared = outcome.prepared if outcome.kind == "blocked" else None
        if outcome.kind == "merged":
            await self._merged(rec, outcome)
        elif outcome.kind == "check_failed":
            await self._check_failed(rec, outcome)
            return
        elif outcome.kind == "conflict":
            await self._conflicted(rec, outcome, apply_policy=apply_policy)
        elif was_blocked_on == outcome.paths:
            return  # still blocked on the same files: nothing new to say
        else:
            rec.paths = outcome.paths
            rec.reason = outcome.reason
            self._transition(
                rec, TaskStatus.BLOCKED, ev.MergeBlocked(task=rec.task.id, paths=outcome.paths, reason=outcome.message)
            )
        self._wake.set()

    def _landing_request(self, rec: TaskRecord, was_blocked_on: tuple[str, ...] | None) -> LandingRequest:
        assert rec.branch is not None
        check = tuple(shlex.split(self.config.merge.check)) if self.config.merge.check else ()
        return LandingRequest(
            branch=rec.branch,
            base=self.base,
            message=self._commit_message(rec.task),
            check=check,
            scratch=self._worktree_dir() / ".check",
            log_path=self.logs / f"{rec.task.id}.log",
            timeout=self.config.agent.timeout or None,
            keep=tuple(self.config.slots.keep),
            # This exact commit passed the check already; only the user's files stopped it.
            checked=rec.prepared if check and was_blocked_on is not None else None,
        )

    def _landing_hooks(self, rec: TaskRecord, was_blocked_on: tuple[str, ...] | None) -> LandingHooks:
        task_id = rec.task.id

        def on_locked() -> None:
            if was_blocked_on is None:
                self._transition(rec, TaskStatus.MERGING, ev.MergeStarted(task=task_id))

        def on_check(prepared: PreparedMerge) -> None:
            self._transition(rec, TaskStatus.CHECKING, ev.CheckStarted(task=task_id, commit=prepared.commit))

        feed = self._agent_feed(rec, make_output_parser("text"))
        return LandingHooks(on_locked=on_locked, on_check=on_check, on_line=lambda line: feed.on_stdout([line]))

    async def _merged(self, rec: TaskRecord, outcome: LandingOutcome) -> None:
        assert rec.branch is not None
        rec.commit = outcome.commit
        rec.paths = ()
        rec.reason = ""
        self._transition(rec, TaskStatus.MERGED, ev.Merged(task=rec.task.id, commit=outcome.commit or ""))
        await asyncio.to_thread(functools.partial(self.git.delete_branch, rec.branch, base=self.base))
        # main moved: re-test running branches before the scheduler picks what to start next.
        await self._predict_conflicts()

    async def _conflicted(self, rec: TaskRecord, outcome: LandingOutcome, *, apply_policy: bool) -> None:
        rec.paths = outcome.paths
        rec.kinds = dict(outcome.kinds)
        rec.reason = outcome.reason
        self._transition(
            rec,
            TaskStatus.CONFLICT,
            ev.ConflictFound(task=rec.task.id, paths=outcome.paths, kinds=dict(outcome.kinds)),
        )
        if not apply_policy:
            return
        action = conflict_action(self.config.merge.on_conflict, rec.requeues)
        if action == "requeue":
            await self.requeue(rec.task.id)
        elif action == "agent":
            await self._resolve_with_agent(rec)

    async def _resolve_with_agent(self, rec: TaskRecord) -> None:
        """Hand a conflict to the configured agent: main merged into the task's worktree, markers and all.

        Done when the agent exits 0, no markers remain and the merge is committed; then the merge into
        main is retried. Past [merge] resolve_attempts the task stays `conflict` for a human.
        """
        task = rec.task
        assert rec.branch is not None
        path = self._resolve_path(rec)
        limit = self.config.merge.resolve_attempts
        while rec.status is TaskStatus.CONFLICT and rec.resolve_attempts < limit:
            rec.resolve_attempts += 1
            self._emit(ev.Notice(message=attempt_notice(task.id, rec.resolve_attempts, limit)))
            before = await self.resolver.branch_tip(rec.branch)
            outcome = await self._one_resolve_attempt(rec, path)
            await self.resolver.drop_worktree(path)
            rec.worktree = None
            if outcome.resolved:
                await self._merge(rec, apply_policy=False)
                continue
            # What a failed attempt committed (a merge with markers left in) must never reach main.
            outcome = await self.resolver.undo_attempt(rec.branch, before, outcome)
            rec.reason = outcome.reason
            self._emit(ev.Notice(message=f"task {task.id}: the resolver agent failed: {outcome.failure}", level="warning"))
            self._transition(
                rec, TaskStatus.CONFLICT, ev.ConflictFound(task=task.id, paths=rec.paths, kinds=dict(rec.kinds))
            )
        if rec.status is TaskStatus.CONFLICT and rec.resolve_attempts >= limit:
            rec.reason = gave_up_reason(rec.paths)
            self._persist()
            self._emit(ev.QueueChanged())

    async def _one_resolve_attempt(self, rec: TaskRecord, path: Path) -> ResolverOutcome:
        """Run the resolver agent once; resolved when the branch now holds a marker-free merge of the base
        tip the agent was given (main may have moved on since: the usual merge takes it from there).

        When nothing conflicts any more (main moved since the merge stopped), no agent is started.
        """
        task = rec.task
        assert rec.branch is not None
        message = self._resolution_message(rec)
        parser = make_output_parser(output_format(self.config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        feed = self._agent_feed(rec, parser)
        spec = AgentSpec(
            task_id=task.id,
            kind="resolve",
            attempt=rec.resolve_attempts,
            slot=rec.slot or 0,
            branch=rec.branch,
            base=self.base,
            keep_commits=True,
            command=self.brief.resolve_command(rec, functools.partial(self.resolver.conflict_files, rec.branch)),
            log_path=self.logs / f"{task.id}.log",
            env=self.brief.env(rec),
            timeout=self.config.agent.timeout or None,
            merge_message=message,
        )
        hooks = AgentHooks(
            on_lines=feed.on_stdout,
            on_stderr=feed.on_stderr,
            on_placed=functools.partial(self._placed, rec),
            on_started=functools.partial(self._record_pgid, rec),
            on_notice=self._notice,
            on_warning=self._warning,
        )
        try:
            handle = await self.agent_runner.start(spec, hooks)
        except StartFailed as exc:
            return ResolverOutcome(False, exc.reason)
        rec.worktree = Path(handle.workspace)
        rec.where, rec.confined = handle.where, handle.confined
        try:
            if not handle.conflicted:
                return ResolverOutcome(True)  # main moved and nothing conflicts now: no agent needed
            return await self._run_resolver(rec, handle, feed, message)
        finally:
            with contextlib.suppress(GitError, OSError):
                await handle.release()

    async def _run_resolver(
        self, rec: TaskRecord, handle: AgentHandle, feed: AgentFeed, message: str
    ) -> ResolverOutcome:
        assert rec.branch is not None
        self._transition(rec, TaskStatus.RESOLVING)
        self._agents[rec.task.id] = handle
        try:
            exit_ = await handle.wait()
        finally:
            self._agents.pop(rec.task.id, None)
            rec.pgid = None
            rec.attachment = None
            feed.finish()
            self._flush_output()
            rec.activity = ""
        self._transition(rec, TaskStatus.CONFLICT)  # the agent is done: the outcome is judged from here
        if not succeeded(exit_, feed.parser):
            return ResolverOutcome(False, failure_reason(exit_, feed.parser, list(rec.stderr_tail), self.preset))
        try:
            collected = await handle.collect(message, failed=False)
        except GitError as exc:
            return ResolverOutcome(False, str(exc))
        # For a resolver the handle's base is the base tip merged in: the agent's merge must hold it.
        start = AttemptStart(handle.conflicted, handle.base_sha or None)
        return await self.resolver.verdict(rec.branch, start, collected.markers)

    def _resolution_message(self, rec: TaskRecord) -> str:
        assert rec.branch is not None
        return resolution_message(self._commit_message(rec.task), self.base, rec.branch, sorted(rec.kinds) or rec.paths)

    async def hand_to_agent(self, task_id: str) -> None:
        """The conflict modal's `g`: the resolver agent gets a fresh set of attempts.

        For a failed check, the task's agent gets its branch back with the check's output in its prompt.
        """
        rec = self._record(task_id)
        if rec.status is TaskStatus.CHECK_FAILED:
            rec.keep_commits = True
            rec.attempts = 0
            self._requeue_front(rec)
            return
        if rec.status not in IN_CONFLICT:
            raise CommandError(f"task {task_id} is not in conflict")
        if task_id in self._runners:
            raise CommandError(f"task {task_id} is busy")
        if rec.status is TaskStatus.RESOLVING and rec.worktree is not None:
            await self.resolver.remove_worktree(rec.worktree)
            rec.worktree = None
            self._transition(rec, TaskStatus.CONFLICT)
        rec.resolve_attempts = 0
        self._spawn(rec, "resolve", self._resolve_with_agent)

    async def _check_failed(self, rec: TaskRecord, outcome: LandingOutcome) -> None:
        task = rec.task
        check = outcome.check
        assert check is not None
        rec.reason = outcome.reason
        rec.check_output = check.output_tail
        self._transition(
            rec, TaskStatus.CHECK_FAILED, ev.CheckFailed(task=task.id, exit=check.exit, output=check.output_tail)
        )
        action = check_failed_action(
            self.config.merge.on_check_fail, rec.requeues, rec.check_fixes, self.config.agent.retries + 1
        )
        if action == "requeue":
            await self.requeue(task.id)
        elif action == "agent":
            # The agent gets its branch back with the failure in its prompt.
            rec.check_fixes += 1
            rec.keep_commits = True
            rec.attempts = 0
            self._requeue_front(rec)
        self._wake.set()

    async def _retry_blocked_merges(self) -> None:
        for rec in list(self.records.values()):
            if rec.status is TaskStatus.BLOCKED and not self._stopping:
                await self._merge(rec)
                if rec.status is TaskStatus.MERGED:
                    self._wake.set()

    # ------------------------------------------------------------------ commands

    def _record(self, task_id: str) -> TaskRecord:
        try:
            return self.records[task_id]
        except KeyError:
            raise CommandError(f"no task {task_id!r}") from None

    def set_workers(self, n: int) -> None:
        n = max(1, n)
        self.workers = n
        while len(self.slots) < n:
            self.slots.append(None)
        while len(self.slots) > n and self.slots[-1] is None:
            self.slots.pop()
        self._emit(ev.PoolChanged(workers=n, paused=self.paused))
        self._wake.set()

    def pause(self) -> None:
        self.paused = True
        self._emit(ev.PoolChanged(workers=self.workers, paused=True))

    def resume(self) -> None:
        self.paused = False
        self._emit(ev.PoolChanged(workers=self.workers, paused=False))
        self._wake.set()

    def refusal(self, command: str, task_id: str | None) -> str | None:
        """Why `command` does not apply to `task_id` right now, in the user's words, or None if it does.

        The one place these rules live: the commands raise these words, and a front end asks before
        offering a key. `command` is a key of `tuiorch.model.status.COMMANDS`.
        """
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        if task_id is None:
            return "no task selected"
        rec = self.records.get(task_id)
        if rec is None:
            return f"no task {task_id!r}"
        if (why := command_refusal(command, task_id, rec.status)) is not None:
            return why
        if command == "merge" and self.config.merge.auto:
            return "finished tasks merge by themselves ([merge] auto = true)"
        return None

    def _refuse(self, command: str, task_id: str) -> TaskRecord:
        """The task's record, or CommandError with refusal()'s words."""
        if (why := self.refusal(command, task_id)) is not None:
            raise CommandError(why)
        return self.records[task_id]

    def cancel(self, task_id: str) -> None:
        self._refuse("cancel", task_id)
        agent = self._agents.get(task_id)
        if agent is not None:
            agent.cancel()
        else:
            runner = self._runners.get(task_id)
            if runner is not None:
                runner.cancel()

    def retry(self, task_id: str) -> None:
        """Start a stopped task again; its branch keeps what earlier attempts committed, and the agent
        continues from there (the work of a cancelled or timed-out attempt is never thrown away)."""
        rec = self._refuse("retry", task_id)
        if rec.status is TaskStatus.CHECK_FAILED:
            self._start_merge_runner(rec)  # main may have moved, or the check was flaky
            return
        rec.attempts = 0
        rec.keep_commits = True
        rec.continued = rec.reason or rec.status.value
        self._requeue_front(rec)

    def _requeue_front(self, rec: TaskRecord) -> None:
        self.queue.to_front(rec.task.id)
        rec.slot = None
        self._transition(rec, TaskStatus.QUEUED, ev.TaskQueued(task=rec.task.id, reason=rec.reason))
        self._emit(ev.QueueChanged())
        self._wake.set()

    def move(self, task_id: str, delta: int) -> None:
        """Move a queued task up (delta < 0) or down past `abs(delta)` other queued tasks."""
        self._refuse("move", task_id)
        if self.queue.move(task_id, delta):
            self._queue_changed()

    def move_top(self, task_id: str) -> Priority:
        """Make a queued task the next to start: first in the queue, and raised to the best priority tier
        among the queued tasks (the scheduler starts by tier first). Returns its priority now."""
        self._refuse("move", task_id)
        priority = self.queue.move_top(task_id)
        self._queue_changed()
        return priority

    def set_priority(self, task_id: str, priority: Priority) -> None:
        self._refuse("priority", task_id)
        self.queue.set_priority(task_id, priority)
        self._queue_changed()

    def toggle_hold(self, task_id: str) -> None:
        self._refuse("hold", task_id)
        self.queue.toggle_hold(task_id)
        self._queue_changed()

    def add_task(self, task: Task) -> None:
        try:
            self.queue.add(task)
        except QueueError as exc:
            raise CommandError(str(exc)) from None
        self._queue_changed()

    def reload_tasks(self, tasks: list[Task]) -> None:
        """Apply an edited task file: queued tasks change, new ones join, removed queued ones leave."""
        self.queue.reload(tasks)
        self._queue_changed()

    def _queue_changed(self) -> None:
        self._persist_soon()
        self._emit(ev.QueueChanged())
        self._wake.set()

    # conflict triage ---------------------------------------------------------

    def conflict_sides(self, task_id: str, path: str) -> tuple[str | None, str | None, str | None]:
        rec = self._record(task_id)
        assert rec.branch is not None
        return self.resolver.sides(rec.branch, path)

    def _resolve_path(self, rec: TaskRecord) -> Path:
        return self._worktree_dir(rec.task.id) / f"resolve-{rec.task.id}"

    def _in_conflict(self, task_id: str) -> TaskRecord:
        rec = self._record(task_id)
        if rec.status not in IN_CONFLICT or rec.branch is None:
            raise CommandError(f"task {task_id} is not in conflict")
        return rec

    def _resolving(self, task_id: str) -> tuple[TaskRecord, Path]:
        rec = self._record(task_id)
        if rec.status is not TaskStatus.RESOLVING or rec.worktree is None:
            raise CommandError(f"task {task_id} has no resolution in progress")
        return rec, rec.worktree

    async def prepare_manual(self, task_id: str) -> Path:
        """A worktree on the task branch with main merged in, conflict markers and all."""
        rec = self._in_conflict(task_id)
        path = self._resolve_path(rec)
        if rec.status is TaskStatus.CONFLICT or rec.worktree != path:
            assert rec.branch is not None
            await self.resolver.prepare_manual(path, rec.branch)
            rec.worktree = path
            self._transition(rec, TaskStatus.RESOLVING)
        return path

    async def take_side(self, task_id: str, path: str, side: Side) -> None:
        rec = self._record(task_id)
        worktree = await self.prepare_manual(task_id)
        await self.resolver.take_side(worktree, path, side)
        rec.paths = tuple(p for p in rec.paths if p != path)
        self._emit(ev.QueueChanged())

    async def mark_resolved(self, task_id: str, path: str) -> None:
        """A path edited by hand (the modal's `e`) is accepted once its markers are gone."""
        rec, worktree = self._resolving(task_id)
        await self.resolver.mark_resolved(worktree, path)
        rec.paths = tuple(p for p in rec.paths if p != path)
        self._emit(ev.QueueChanged())

    async def finish_resolution(self, task_id: str) -> None:
        rec, worktree = self._resolving(task_id)
        await self.resolver.finish(worktree, self._resolution_message(rec))
        rec.worktree = None
        await self._merge(rec)

    def is_busy(self, task_id: str) -> bool:
        """A merge or the resolver agent is at work on the task (its conflict is not the user's to touch)."""
        return task_id in self._runners

    async def conflict_resolution(self, task_id: str) -> Resolution:
        """The task's conflict as hunks to choose from, pinned to the two tips it was computed from."""
        rec = self._in_conflict(task_id)
        assert rec.branch is not None
        try:
            return await self.resolver.hunks(rec.branch, rec.paths)
        except ResolutionError as exc:
            raise CommandError(str(exc)) from None

    async def resolve_conflict(self, task_id: str, resolution: Resolution) -> None:
        """Commit a hunk-by-hunk resolution on the task branch as the merge of exactly the tips it was made
        from, then retry the merge into base (which may conflict again if base moved since)."""
        rec = self._in_conflict(task_id)
        assert rec.branch is not None
        if task_id in self._runners:
            raise CommandError(f"task {task_id} is busy")
        try:
            await self.resolver.check_pinned(rec.branch, resolution)
            path = self._resolve_path(rec)
            if rec.worktree is not None and rec.status is TaskStatus.RESOLVING:
                await self.resolver.remove_worktree(rec.worktree)
            conflicted = await self.resolver.begin_hunk_merge(path, rec.branch, resolution)
            rec.worktree = path
            self._transition(rec, TaskStatus.RESOLVING)
            await self.resolver.apply_hunks(path, resolution, conflicted)
        except ResolutionError as exc:
            raise CommandError(str(exc)) from None
        await self.finish_resolution(task_id)

    async def task_diff(self, task_id: str, *, max_lines: int = DIFF_MAX_LINES) -> TaskDiff:
        """What the task changed against its merge base: the merge commit once merged, the agent's worktree
        (uncommitted work too) while it runs, else its branch."""
        rec = self._record(task_id)
        branch = rec.branch or self._branch_name(rec.task)
        diff = functools.partial(self.git.task_diff, self.base, max_lines=max_lines)
        if rec.status is TaskStatus.MERGED and rec.commit:
            return await asyncio.to_thread(diff, commit=rec.commit)
        if rec.status in IN_SLOT and rec.holds_worktree and rec.worktree is not None:
            with contextlib.suppress(GitError):
                return await asyncio.to_thread(diff, worktree=rec.worktree)
        if await asyncio.to_thread(self.git.branch_tip, branch):
            return await asyncio.to_thread(diff, branch=branch)
        return TaskDiff(base=self.base, source="nothing yet: the task has no branch")

    def send_back(self, task_id: str, note: str) -> None:
        """Review's `g`: the task's agent gets its branch back, with the user's note in its prompt."""
        rec = self._record(task_id)
        if rec.status not in COMMANDS["review"]:
            raise CommandError(
                f"task {task_id} is {rec.status.value}; only a finished task (or a failed check) goes back to its agent"
            )
        if task_id in self._runners:
            raise CommandError(f"task {task_id} is busy")
        if not note.strip():
            raise CommandError("write a note saying what the agent should change")
        rec.review_note = note.strip()
        rec.keep_commits = True
        rec.attempts = 0
        rec.reason = "sent back to its agent with your note"
        self._requeue_front(rec)

    async def requeue(self, task_id: str) -> None:
        """Abort: drop branch and worktree, redo the task from the new main, at the head of the queue."""
        rec = self._refuse("requeue", task_id)
        if rec.status is TaskStatus.RESOLVING and rec.worktree is not None:
            await asyncio.to_thread(self.git.remove_worktree, rec.worktree)
        if rec.branch:
            await asyncio.to_thread(functools.partial(self.git.delete_branch, rec.branch, force=True, base=self.base))
        rec.requeues += 1
        rec.attempts = 0
        rec.paths = ()
        rec.reason = "requeued after conflict"
        rec.worktree = None
        self._requeue_front(rec)

    # ------------------------------------------------------------------ plumbing

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

    def _emit(self, event: ev.Event) -> None:
        if not isinstance(event, ev.TaskOutput | ev.TaskProgress):
            self._version += 1  # every other event may change a queue row or a wait reason
        self.sink(event)

    async def _flush_output_loop(self) -> None:
        while True:
            await asyncio.sleep(OUTPUT_FLUSH_SECONDS)
            self._flush_output()

    async def _predict_conflicts_loop(self) -> None:
        """Test-merge each running branch against main whenever either side moves (no worktree touched)."""
        while True:
            await asyncio.sleep(PREDICT_SECONDS)
            await self._predict_conflicts()

    async def _predict_conflicts(self) -> None:
        running = [
            RunningBranch(r.task.id, r.branch, r.base_sha, r.predicted)
            for r in self.records.values()
            if r.status in IN_SLOT and r.branch and r.base_sha
        ]
        for prediction in await self.predictor.predict(running):
            rec = self.records[prediction.task_id]
            if rec.status not in IN_SLOT or prediction.paths == rec.predicted:
                continue
            rec.predicted = prediction.paths
            if prediction.paths:
                self._emit(ev.ConflictPredicted(task=rec.task.id, paths=prediction.paths))
            else:
                self._emit(ev.ConflictCleared(task=rec.task.id))
            self._wake.set()  # queued tasks touching these paths now wait (or may start)

    def _flush_output(self) -> None:
        pending, self._pending_output = self._pending_output, {}
        for task_id, lines in pending.items():
            # The tail grows with what is emitted, never ahead of it: a pane that starts a task from its tail
            # and then appends each TaskOutput shows every line once.
            if (rec := self.records.get(task_id)) is not None:
                rec.tail.extend(lines)
            self._emit(ev.TaskOutput(task=task_id, lines=tuple(lines)))

    async def _cleanup_slots(self) -> None:
        if self.config.slots.keep_at_end:
            return
        await self.agent_runner.close()
        check = self._worktree_dir() / ".check"
        if check.exists():
            await asyncio.to_thread(self.git.remove_worktree, check)
        await asyncio.to_thread(self.git.prune)

    def summary(self) -> ev.RunFinished:
        """Every task with its state now, and the commits that landed on base this run."""
        return report.from_records(self.queue.in_order(), self.main_commits())

    def total_usage(self) -> Usage | None:
        """Tokens and cost of the whole run so far; None when no agent reported any."""
        return report.total_usage(rec.usage for rec in self.records.values())

    # ------------------------------------------------------------------ persistence

    def _persist(self, *, finished: bool = False) -> None:
        data = state.dump(
            self.queue, base=self.base, base_at_start=self._base_at_start, workers=self.workers, finished=finished
        )
        save_state(self.git.git_dir, data)

    def _persist_soon(self) -> None:
        """Queue edits (order, holds, priorities) come in bursts of keys: save once they settle."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._persist()
            return
        if self._persist_handle is None:
            self._persist_handle = loop.call_later(QUEUE_SAVE_DELAY, self._persist_deferred)

    def _persist_deferred(self) -> None:
        self._persist_handle = None
        self._persist()

    def _restore_state(self) -> None:
        """Keep the user's queue order, holds and priorities; remember the rest for `_reconcile`."""
        try:
            saved = load_state(self.git.git_dir)
        except StateError as exc:
            self._restore_notice = f"{exc}; starting without the saved queue order"
            return
        if not saved or saved.get("base") != self.base:
            return
        self._saved = saved
        for rec in state.restore(self.queue, saved):
            rec.log_path = self._existing_log(rec.task.id)
            self._transition(rec, TaskStatus.MERGED, restoring=True)

    def _existing_log(self, task_id: str) -> Path | None:
        """The log an earlier run wrote for the task, if any (`l` shows it for a carried-over task)."""
        path = self.logs / f"{task_id}.log"
        return path if path.is_file() else None

    async def _clean_up_after_dead_run(self, saved: dict) -> None:
        """The last run died: end its agents, then drop the git locks only it could have held."""
        # The runner ends the agents where they run (a cluster runner brings what they did into their
        # branches first), then the git locks only the dead run could have held are dropped.
        tasks = saved.get("tasks", {})
        for notice in await end_dead_run(self.git.git_dir, self.base, tasks, end_orphans=self.agent_runner.end_orphans):
            self._emit(ev.Notice(message=notice.message, level=notice.level))

    async def _reconcile(self) -> None:
        """Pick up where a dead or finished run left off (the rules are `tuiorch.steps.recovery`'s)."""
        saved = self._saved
        if not saved:
            return
        if not saved.get("finished") and saved.get("base_at_start"):
            self._base_at_start = saved["base_at_start"]
        tasks = [
            SavedTask.from_state(task_id, data, branch=self._branch_name(rec.task), title=rec.task.title)
            for task_id, data in saved.get("tasks", {}).items()
            if (rec := self.records.get(task_id)) is not None
        ]
        ends = functools.partial(self._end_saved_agent, saved.get("tasks", {}))
        async for recovery in recover(self.git, tasks, base=self.base, worktrees=self._worktree_dir(), end_agent=ends):
            self._apply_recovery(recovery)
        self._persist()
        self._emit(ev.QueueChanged())

    async def _end_saved_agent(self, saved_tasks: dict, saved: SavedTask) -> str | None:
        """End a dead run's agent through the runner, from what the run state saved about it."""
        return await self.agent_runner.clean_up(Attachment.from_state(saved_tasks.get(saved.task_id, {})))

    def _apply_recovery(self, recovery: TaskRecovery) -> None:
        for notice in recovery.notices:
            self._emit(ev.Notice(message=notice))
        saved = recovery.saved
        if saved.merged:
            return
        rec = self.records[saved.task_id]
        rec.log_path = self._existing_log(saved.task_id)
        rec.branch = saved.branch
        rec.base_sha = saved.base_sha
        rec.requeues = saved.requeues
        rec.attempts = saved.attempts
        for action in recovery.actions:
            match action:
                case MarkMerged(commit=commit):
                    rec.commit = commit
                    rec.reason = "merged before tuiorch stopped"
                    self._transition(rec, TaskStatus.MERGED, ev.Merged(task=rec.task.id, commit=commit), restoring=True)
                case ResumeMerge(tip=tip):
                    self._transition(rec, TaskStatus.FINISHED, restoring=True)
                    rec.tip = tip
                    self._resume_merges.append(rec)
                case Requeue(front=front, keep_commits=keep_commits, attempts=attempts):
                    self._transition(rec, TaskStatus.QUEUED, restoring=True)
                    rec.reason = ""
                    rec.keep_commits = rec.keep_commits or keep_commits
                    rec.attempts = attempts
                    if front:
                        self.queue.to_front(rec.task.id)


class _AttemptHost:
    """The orchestrator's part in one task attempt: the agent's hooks, and the transitions at its start
    and end (see steps.attempt.AttemptHost)."""

    def __init__(self, orch: Orchestrator, rec: TaskRecord, slot: int, parser: OutputParser) -> None:
        self.orch = orch
        self.rec = rec
        self.slot = slot
        self.parser = parser
        self.feed = orch._agent_feed(rec, parser)
        self.hooks = AgentHooks(
            on_lines=self.feed.on_stdout,
            on_stderr=self.feed.on_stderr,
            on_stuck=self._stuck,
            on_unstuck=functools.partial(orch._unstuck, rec),
            on_placed=functools.partial(orch._placed, rec),
            on_started=functools.partial(orch._record_pgid, rec),
            on_notice=orch._notice,
            on_warning=orch._warning,
        )

    def _stuck(self, idle: float) -> None:
        event = ev.TaskStuck(task=self.rec.task.id, idle_seconds=round(idle, 1))
        self.orch._transition(self.rec, TaskStatus.STUCK, event)

    def ready(self, handle: AgentHandle) -> None:
        orch, rec = self.orch, self.rec
        if orch._stopping:
            raise asyncio.CancelledError
        rec.worktree = Path(handle.workspace)
        rec.base_sha = handle.base_sha
        rec.holds_worktree = True
        rec.where, rec.confined = handle.where, handle.confined
        orch._agents[rec.task.id] = handle
        assert rec.branch is not None
        started = ev.TaskStarted(
            task=rec.task.id,
            slot=self.slot + 1,
            branch=rec.branch,
            worktree=handle.workspace,
            attempt=rec.attempts,
            confined=handle.confined,
        )
        orch._transition(rec, TaskStatus.RUNNING, started)

    def ended(self, exit_: AgentExit) -> str | None:
        orch, rec = self.orch, self.rec
        self.feed.finish()
        rec.ended = time.time()
        rec.pgid = None
        rec.attachment = None
        orch._flush_output()
        orch._emit(ev.TaskFinished(task=rec.task.id, exit=exit_.code, signal=exit_.signal, timed_out=exit_.timed_out))
        if succeeded(exit_, self.parser):
            return None
        return failure_reason(exit_, self.parser, list(rec.stderr_tail), orch.preset)
