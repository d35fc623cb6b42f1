"""The pool loop: owns the run state, starts agents in slots, merges what they finish.

Every transition goes through `_transition`, which persists the run state and then
emits the event, so a front end never shows something a crash could forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from tuiorch import events as ev
from tuiorch import report, state
from tuiorch.agent import AgentExit, AgentProcess, ProcessHooks
from tuiorch.agent_output import OutputParser, ParsedLine, Usage, make_output_parser
from tuiorch.config import (
    CONFIG_FILE,
    Config,
    Preset,
    agent_argv,
    agent_preset,
    branch_name,
    output_format,
    prompt_on_stdin,
    render_argv,
    render_commit_message,
    too_long_argument,
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
    UncommittedWork,
    with_task_worktree_config,
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
from tuiorch.prompt import RESOLVE_TEMPLATE, load_template, render_prompt, render_resolve_prompt
from tuiorch.queue import QueueError, QueueRow, RunQueue
from tuiorch.runlock import RunLock
from tuiorch.state import StateError, load_state, log_dir, save_state
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
from tuiorch.steps.resolution import (
    AttemptOutcome,
    ConflictResolver,
    ResolutionError,
    Side,
    attempt_notice,
    gave_up_reason,
    resolution_message,
)
from tuiorch.tasks import Priority, Task

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
    ) -> None:
        self.root = Path(root).resolve()
        self.config = config
        self.sink = sink
        self.task_file = task_file
        self.keep_alive = keep_alive
        self.git = GitRepo(self.root)
        self.state_dir = self.git.git_dir / "tuiorch"
        self.logs = log_dir(self.git.git_dir)
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
        #: Slot worktrees holding work tuiorch could not commit, which git would not move away.
        self._kept_worktrees: set[Path] = set()
        self._processes: dict[str, AgentProcess] = {}
        self._pending_output: dict[str, list[str]] = {}
        self._stopping = False
        self._base_at_start: str | None = None
        self._restore_notice: str | None = None
        self._saved: dict | None = None
        self._resume_merges: list[TaskRecord] = []
        self._persist_handle: asyncio.TimerHandle | None = None
        self._restore_state()

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
        for process in self._processes.values():
            process.cancel()
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

    def _slot_path(self, slot: int, task: Task) -> Path:
        if self.config.slots.reuse:
            path = self._worktree_dir() / f"slot-{slot + 1}"
            generation = 1
            while path in self._kept_worktrees:  # a kept worktree git could not move out of the slot
                generation += 1
                path = self._worktree_dir() / f"slot-{slot + 1}.{generation}"
            return path
        return self._worktree_dir(task.id) / self._branch_name(task)

    def _branch_name(self, task: Task) -> str:
        return branch_name(self.config, task.id, self.root.name)

    async def _run_task(self, rec: TaskRecord, slot: int) -> None:
        task = rec.task
        try:
            await self._run_agent_and_merge(rec, slot)
        except asyncio.CancelledError:
            if rec.status in IN_SLOT:
                rec.reason = "cancelled"
                self._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            raise
        except UncommittedWork as exc:
            await self._keep_worktree(rec, exc)
        except (GitError, OSError) as exc:
            await self._fail_after_error(rec, str(exc))
        except Exception as exc:  # a bug must fail one task, not take the pool down
            await self._fail_after_error(rec, f"internal error: {type(exc).__name__}: {exc}")
        finally:
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

    async def _run_agent_and_merge(self, rec: TaskRecord, slot: int) -> None:
        task = rec.task
        rec.attempts += 1
        rec.started = time.time()
        rec.ended = None
        rec.progress = None
        rec.reason = ""
        rec.branch = self._branch_name(task)
        rec.worktree = self._slot_path(slot, task)
        rec.log_path = self.logs / f"{task.id}.log"
        fresh_worktree = not rec.worktree.exists()
        rec.holds_worktree = True
        # An earlier attempt's commits are kept: the retry builds on them.
        rec.base_sha = await asyncio.to_thread(
            functools.partial(
                self.git.prepare_worktree,
                rec.worktree,
                rec.branch,
                self.base,
                tuple(self.config.slots.keep),
                keep_commits=rec.attempts > 1 or rec.keep_commits,
                scratch=self.preset.scratch,
            )
        )
        for ref in self.git.take_rescued():
            self._emit(ev.Notice(message=f"{rec.worktree} held uncommitted work; saved as {ref} before reuse"))
        if fresh_worktree and self.config.slots.setup:
            failure = await self._run_setup(rec)
            if failure:
                await asyncio.to_thread(self.git.remove_worktree, rec.worktree)  # set up again next time
                rec.reason = failure
                rec.ended = time.time()
                self._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=task.id, reason=failure))
                return
        prompt = render_prompt(
            self.template,
            task=task,
            worktree=str(rec.worktree),
            branch=rec.branch,
            agent_name=self.preset.agent_name,
            agent_email=self.preset.agent_email,
            extra=self._retry_note(rec),
            commits=self.preset.commits,
            commit_message=self._commit_message(task),
        )
        prompt_file = self.state_dir / "prompts" / f"{task.id}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(prompt, encoding="utf-8")
        argv = render_argv(
            self._argv_template, prompt=prompt, prompt_file=str(prompt_file), worktree=str(rec.worktree)
        )
        if too_long := too_long_argument(argv):
            await self._leave_worktree(rec)
            await self._fail_after_error(rec, too_long)
            return
        argv = await self._confine(rec, rec.worktree, argv)

        def on_stuck(idle: float) -> None:
            self._transition(rec, TaskStatus.STUCK, ev.TaskStuck(task=task.id, idle_seconds=round(idle, 1)))

        parser = make_output_parser(output_format(self.config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        on_stdout, on_stderr, finish_output = self._line_handler(rec, parser)
        process = AgentProcess(
            argv,
            rec.worktree,
            rec.log_path,
            hooks=ProcessHooks(
                on_lines=on_stdout,
                on_stderr=on_stderr,
                on_stuck=on_stuck,
                on_spawn=lambda pgid: self._record_pgid(rec, pgid),
            ),
            stdin_path=prompt_file if prompt_on_stdin(self.config) else None,
            timeout=self.config.agent.timeout or None,
            stuck_after=self.config.agent.stuck_after or None,
            watch_dir=rec.worktree,
            env=self._agent_env(rec),
        )
        if self._stopping:
            raise asyncio.CancelledError
        self._processes[task.id] = process
        self._transition(
            rec,
            TaskStatus.RUNNING,
            ev.TaskStarted(
                task=task.id,
                slot=slot + 1,
                branch=rec.branch,
                worktree=str(rec.worktree),
                attempt=rec.attempts,
                confined=rec.confined,
            ),
        )
        try:
            exit_ = await process.run()
        except BaseException:
            await self.confiner.collect(task.id, quiet=True)
            raise
        finally:
            self._processes.pop(task.id, None)
        self._confined_note(task.id, await self.confiner.collect(task.id))
        finish_output()
        rec.ended = time.time()
        rec.pgid = None
        self._flush_output()
        self._emit(ev.TaskFinished(task=task.id, exit=exit_.code, signal=exit_.signal, timed_out=exit_.timed_out))
        # A CLI may exit 0 although its model calls failed (aider does): its own words decide.
        failed = not _succeeded(exit_) or parser.error is not None
        if failed:
            # An interrupted attempt's edits are kept on its branch: a retry builds on them. Edits that
            # cannot be committed (UncommittedWork) fail the task and keep its worktree (see _run_task).
            with _suppress_all_but(GitError, UncommittedWork):
                await asyncio.to_thread(
                    self.git.commit_leftovers,
                    rec.worktree,
                    f"wip: {task.title} (attempt {rec.attempts} stopped)",
                    rec.branch,
                    self.preset.scratch,
                )
            await self._leave_worktree(rec)
        if exit_.cancelled:
            rec.reason = "cancelled"
            self._transition(rec, TaskStatus.CANCELLED, ev.TaskCancelled(task=task.id))
            return
        if failed:
            reason = failure_reason(exit_, parser, list(rec.stderr_tail), self.preset)
            rec.last_failure = reason
            rec.activity = ""
            if rec.attempts <= self.config.agent.retries:
                rec.reason = f"attempt {rec.attempts} failed: {reason}; retrying"
                self._requeue_front(rec)
                return
            rec.reason = reason
            self._transition(
                rec,
                TaskStatus.FAILED,
                ev.TaskFailed(task=task.id, reason=reason, exit=exit_.code, signal=exit_.signal),
            )
            return
        rec.review_note = ""
        message = self._commit_message(task)
        await asyncio.to_thread(self.git.commit_leftovers, rec.worktree, message, rec.branch, self.preset.scratch)
        has_commits = await asyncio.to_thread(self.git.has_new_commits, rec.branch, rec.base_sha)
        rec.tip = await asyncio.to_thread(self.git.branch_tip, rec.branch)
        await self._leave_worktree(rec)
        rec.activity = ""
        if not has_commits:
            rec.reason = "agent exited 0 without changing anything"
            self._transition(rec, TaskStatus.EMPTY, ev.TaskEmpty(task=task.id))
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

    async def _run_setup(self, rec: TaskRecord) -> str | None:
        """[slots] setup, once in a newly made worktree (argv split, never a shell); a failure message or None."""
        assert rec.worktree is not None and rec.log_path is not None
        argv = shlex.split(self.config.slots.setup)
        with open(rec.log_path, "a", encoding="utf-8") as log:
            log.write(f"== setup: {shlex.join(argv)} in {rec.worktree} ==\n")
        process = AgentProcess(
            argv, rec.worktree, rec.log_path, timeout=self.config.agent.timeout or None, env=self._agent_env(rec)
        )
        self._processes[rec.task.id] = process
        try:
            exit_ = await process.run()
        finally:
            self._processes.pop(rec.task.id, None)
        if _succeeded(exit_):
            return None
        return f"slot setup `{self.config.slots.setup}` {_exit_words(exit_)}"

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

    def _line_handler(
        self, rec: TaskRecord, parser: OutputParser
    ) -> tuple[Callable[[list[str]], None], Callable[[list[str]], None], Callable[[], None]]:
        """Per agent run: parse each burst of stdout (and, apart, stderr) lines into the pane's tail, the
        task's progress, its live activity and its usage. Returns the stdout and stderr handlers and
        `finish`, which takes what the parser held back once the run has ended."""
        task_id = rec.task.id
        usage_before = rec.usage

        def take(parsed_lines: list[ParsedLine], count: int) -> None:
            rec.last_output = time.time()
            rec.lines += count
            shown: list[str] = []
            progress = None
            activity = None
            for parsed in parsed_lines:
                display = parsed.display
                if display is not None:
                    if "\n" in display:
                        shown.extend(display.splitlines())
                    else:
                        shown.append(display)
                if parsed.progress is not None:
                    progress = parsed.progress
                if parsed.status:
                    activity = parsed.status
            self._pending_output.setdefault(task_id, []).extend(shown)
            if parser.usage is not None:
                rec.usage = parser.usage if usage_before is None else usage_before + parser.usage
            if progress is not None:
                # One progress event per burst: a flood of PROGRESS lines needs only the latest.
                rec.progress = p = progress
                self._emit(ev.TaskProgress(task=task_id, percent=p.percent, done=p.done, total=p.total, text=p.text))
            if activity is not None and activity != rec.activity:
                rec.activity = activity
                self._emit(ev.TaskActivity(task=task_id, activity=activity))
            if rec.status is TaskStatus.STUCK:
                self._transition(rec, TaskStatus.RUNNING)

        def on_stdout(lines: list[str]) -> None:
            take([parser.feed(line) for line in lines], len(lines))

        def on_stderr(lines: list[str]) -> None:
            rec.stderr_tail.extend(line for line in lines if line.strip())
            take([parser.feed_stderr(line) for line in lines], len(lines))

        def finish() -> None:
            take([parser.flush()], 0)

        return on_stdout, on_stderr, finish

    def _merged_anyway(self, rec: TaskRecord, error: str) -> bool:
        """A git error after the merge landed (its branch could not be deleted) does not undo the merge:
        the task stays merged and the user is told. True if that is the case."""
        if rec.status is not TaskStatus.MERGED:
            return False
        self._emit(ev.Notice(message=f"task {rec.task.id} is merged, but then: {error}", level="warning"))
        return True

    async def _fail_after_error(self, rec: TaskRecord, reason: str) -> None:
        if self._merged_anyway(rec, reason):
            return
        rec.reason = reason
        rec.ended = rec.ended or time.time()
        self._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=rec.task.id, reason=reason))
        with contextlib.suppress(GitError, OSError):
            await self._leave_worktree(rec)

    async def _keep_worktree(self, rec: TaskRecord, exc: UncommittedWork) -> None:
        """Work tuiorch could not commit: fail the task and keep its worktree, never reset or removed.

        A warm slot's worktree is moved out of the slot (the slot starts afresh for the next task);
        if git will not move it, the slot gets a new folder instead and this one stays as it is.
        """
        rec.holds_worktree = False
        kept = exc.worktree
        reason = str(exc)
        if self.config.slots.reuse and kept.parent == self._worktree_dir():
            base = self._worktree_dir() / f"kept-{kept.name}-task-{rec.task.id}"
            target, n = base, 1
            while target.exists():
                n += 1
                target = base.with_name(f"{base.name}.{n}")
            if await asyncio.to_thread(self.git.move_worktree, kept, target):
                reason = reason.replace(str(kept), str(target))
                if rec.worktree == kept:
                    rec.worktree = target
            else:
                self._kept_worktrees.add(kept)
        rec.reason = reason
        rec.ended = rec.ended or time.time()
        self._transition(rec, TaskStatus.FAILED, ev.TaskFailed(task=rec.task.id, reason=reason))

    async def _leave_worktree(self, rec: TaskRecord) -> None:
        """The agent is done with its worktree: detach a warm slot, or remove a per-task one.

        Only once, and only while the task still holds it: a freed slot may already serve another task.
        """
        if rec.worktree is None or not rec.holds_worktree:
            return
        rec.holds_worktree = False
        if self.config.slots.reuse:
            await asyncio.to_thread(self.git.release_worktree, rec.worktree)
        else:
            await asyncio.to_thread(self.git.remove_worktree, rec.worktree)

    def _agent_env(self, rec: TaskRecord) -> dict[str, str]:
        # TUIORCH_GIT_DIR marks the process as ours: a resumed run finds and ends it even if this run
        # dies before recording its process group.
        # The agent's own git keeps the worktree a full checkout with an index libgit2 can read.
        inherited = {k: v for k, v in os.environ.items() if k.startswith("GIT_CONFIG_")}
        return {
            # What the CLI needs to run unattended in a new folder (e.g. gemini's workspace trust).
            **dict(self.preset.env),
            **with_task_worktree_config(inherited),
            "TUIORCH_TASK": rec.task.id,
            "TUIORCH_BRANCH": rec.branch or "",
            "TUIORCH_GIT_DIR": str(self.git.git_dir.resolve()),
        }

    async def _confine(self, rec: TaskRecord, worktree: Path, argv: list[str]) -> list[str]:
        """The argv to start for this attempt: inside its sandbox when the run confines its agents."""
        rec.confined = self.confiner.on
        assert rec.branch is not None
        env = {**os.environ, **self._agent_env(rec)}
        log_path = self.logs / f"{rec.task.id}.log"
        argv = await self.confiner.enter(rec.task.id, worktree, rec.branch, self.base, argv, env, log_path)
        if self._stopping:  # stopped while the sandbox was made: the agent never starts
            await self.confiner.collect(rec.task.id, quiet=True)
            raise asyncio.CancelledError
        return argv

    def _confined_note(self, task_id: str, note: str) -> None:
        if note:
            self._emit(ev.Notice(message=f"task {task_id}: {note}", level="warning"))

    def _record_pgid(self, rec: TaskRecord, pgid: int) -> None:
        rec.pgid = pgid
        self._persist()

    def _retry_note(self, rec: TaskRecord) -> str:
        if rec.review_note and rec.keep_commits:
            return (
                "Your branch already holds your earlier work for this task. It was reviewed and sent back "
                f"to you with this note:\n```\n{rec.review_note}\n```\nMake the changes it asks for and commit.\n"
            )
        if rec.check_output and rec.keep_commits:
            return (
                f"Your branch already holds your earlier work, but merged with {self.base} it fails the "
                f"check `{self.config.merge.check}`. Fix that and commit. The check's last output:\n"
                f"```\n{rec.check_output}\n```\n"
            )
        if rec.continued and rec.attempts <= 1:
            return (
                f"An earlier attempt at this task was stopped ({rec.continued}). Your branch "
                f"{rec.branch} already holds what it committed (and any edits it left, committed as "
                "\"wip\"): look at them (git log, git diff) and continue from there rather than start over.\n"
            )
        if rec.attempts <= 1 or not rec.tail:
            return ""
        last = "\n".join(list(rec.tail)[-20:])
        why = rec.last_failure or "no reason given"
        return f"A previous attempt failed ({why}). Its last output lines:\n```\n{last}\n```\n"

    def _commit_message(self, task: Task) -> str:
        return render_commit_message(
            self.config.merge.message,
            type=task.type,
            title=task.title,
            id=task.id,
            agent_name=self.preset.agent_name,
            agent_email=self.preset.agent_email,
        )

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

        show_lines, _stderr, _finish = self._line_handler(rec, make_output_parser("text"))
        return LandingHooks(on_locked=on_locked, on_check=on_check, on_line=lambda line: show_lines([line]))

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

    async def _one_resolve_attempt(self, rec: TaskRecord, path: Path) -> AttemptOutcome:
        """Run the resolver agent once; resolved when the branch now holds a marker-free merge of the base
        tip the agent was given (main may have moved on since: the usual merge takes it from there).

        When nothing conflicts any more (main moved since the merge stopped), no agent is started.
        """
        task = rec.task
        assert rec.branch is not None
        message = self._resolution_message(rec)
        start = await self.resolver.begin_attempt(path, rec.branch, message)
        rec.worktree = path
        if not start.conflicted:
            return AttemptOutcome(True)  # main moved and nothing conflicts now: no agent needed
        files = await self.resolver.conflict_files(rec.branch, start.conflicted)
        prompt = render_resolve_prompt(
            self.resolve_template,
            task=task,
            worktree=path,
            branch=rec.branch,
            files=files,
            base_branch=self.base,
            agent_name=self.preset.agent_name,
            agent_email=self.preset.agent_email,
            commits=self.preset.commits,
        )
        prompt_file = self.state_dir / "prompts" / f"{task.id}-resolve.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(prompt, encoding="utf-8")
        argv = render_argv(self._argv_template, prompt=prompt, prompt_file=str(prompt_file), worktree=str(path))
        if too_long := too_long_argument(argv):
            return AttemptOutcome(False, too_long)
        argv = await self._confine(rec, path, argv)
        self._transition(rec, TaskStatus.RESOLVING)
        parser = make_output_parser(output_format(self.config))
        rec.stderr_tail.clear()  # an earlier run's last words are not this one's
        on_stdout, on_stderr, finish_output = self._line_handler(rec, parser)
        process = AgentProcess(
            argv,
            path,
            self.logs / f"{task.id}.log",
            hooks=ProcessHooks(
                on_lines=on_stdout, on_stderr=on_stderr, on_spawn=lambda pgid: self._record_pgid(rec, pgid)
            ),
            stdin_path=prompt_file if prompt_on_stdin(self.config) else None,
            timeout=self.config.agent.timeout or None,
            env=self._agent_env(rec),
        )
        self._processes[task.id] = process
        try:
            exit_ = await process.run()
        except BaseException:
            await self.confiner.collect(task.id, quiet=True)
            raise
        finally:
            self._processes.pop(task.id, None)
            rec.pgid = None
            finish_output()
            self._flush_output()
            rec.activity = ""
        self._confined_note(task.id, await self.confiner.collect(task.id))
        self._transition(rec, TaskStatus.CONFLICT)  # the agent is done: the outcome is judged from here
        if not _succeeded(exit_) or parser.error is not None:
            return AttemptOutcome(False, failure_reason(exit_, parser, list(rec.stderr_tail), self.preset))
        return await self.resolver.finish_attempt(path, rec.branch, start, message)

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
        process = self._processes.get(task_id)
        if process is not None:
            process.cancel()
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
        paths = {self._slot_path(i, self.records[t].task) for i, t in enumerate(self.slots) if t}
        if self.config.slots.reuse:
            paths |= {self._slot_path(i, Task(id="_", title="_")) for i in range(max(len(self.slots), self.workers))}
        paths.add(self._worktree_dir() / ".check")
        # In parallel: deleting several big checkouts is disk-bound.
        await asyncio.gather(*(asyncio.to_thread(self.git.remove_worktree, p) for p in paths if p.exists()))
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
        for notice in await end_dead_run(self.git.git_dir, self.base, saved.get("tasks", {})):
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
        async for recovery in recover(self.git, tasks, base=self.base, worktrees=self._worktree_dir()):
            self._apply_recovery(recovery)
        self._persist()
        self._emit(ev.QueueChanged())

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


def _succeeded(exit_: AgentExit) -> bool:
    return exit_.code == 0 and not exit_.timed_out and exit_.signal is None


@contextlib.contextmanager
def _suppress_all_but(suppressed: type[BaseException], raised: type[BaseException]) -> Iterator[None]:
    """Suppress `suppressed` errors except those that are also `raised` (a subclass that must go up)."""
    try:
        yield
    except raised:
        raise
    except suppressed:
        pass


def _exit_words(exit_: AgentExit) -> str:
    if exit_.timed_out:
        return "timed out"
    if exit_.signal:
        return f"killed by {exit_.signal}"
    if exit_.error:
        return exit_.error
    return f"exited {exit_.code}"


#: HTTP statuses a model API answers with; a CLI that exits with the status & 0xFF is read back by these.
_HTTP_STATUSES = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529)


def failure_reason(exit_: AgentExit, parser: OutputParser, stderr: list[str], preset: Preset) -> str:
    """Why an agent run failed, in the agent's own words where it gave any.

    In order: a timeout or signal; the error the agent's output reported (an API error, a turn limit);
    what its exit code means for its CLI; the last recoverable error it reported; its last stderr line;
    the bare exit code.
    """
    if exit_.timed_out or exit_.signal or exit_.error:
        return _exit_words(exit_)
    code = exit_.code
    meaning = dict(preset.exit_codes).get(code) if code is not None else None
    where = f"exit {code}"
    if meaning is None and preset.http_exit_codes and code is not None:
        statuses = [status for status in _HTTP_STATUSES if status & 0xFF == code]
        if statuses:
            where = f"exit {code}: HTTP {statuses[0]}, as this CLI exits with the HTTP status & 0xFF"
            meaning = f"the model API answered HTTP {statuses[0]} ({where})"
    if parser.error:
        return f"{_clip(parser.error)} ({where})"  # one line: it heads a pane's note and a headless line
    words = parser.warning or (stderr[-1].strip() if stderr else "")
    if meaning:
        return f"{meaning}: {_clip(words)}" if words else meaning
    if words:
        return f"{_clip(words)} ({where})"
    return f"agent exited {code}"


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
