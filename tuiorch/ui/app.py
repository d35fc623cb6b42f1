"""The tuiorch TUI: the App runs the engine, keeps the task file in step, turns engine messages into redraws
and notifications, and leaves cleanly. What is drawn and what the main screen's keys do is `MainScreen`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, SuspendNotSupported
from textual.binding import Binding
from textual.keys import _character_to_key
from textual.screen import Screen
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from tuiorch.config import Config
from tuiorch.events import RunFinished
from tuiorch.hunks import Resolution
from tuiorch.orchestrator import CommandError, Orchestrator
from tuiorch.tasks import Task, TaskFileError, load_tasks, write_priority
from tuiorch.ui import messages
from tuiorch.ui.bindings import MAIN_BINDINGS, validate_keymap
from tuiorch.ui.bridge import Bridge
from tuiorch.ui.commands import TuiorchCommands
from tuiorch.ui.format import exit_code_for, pending_lines
from tuiorch.ui.screens import ConfirmScreen, ConflictScreen, HelpScreen
from tuiorch.ui.screens.add_task import append_task
from tuiorch.ui.screens.help import key_rows
from tuiorch.ui.screens.main import MainScreen
from tuiorch.ui.watch import task_file_changes
from tuiorch.ui.widgets.queue_table import QueueTable
from tuiorch.ui.widgets.worker_pane import PANE_MAX_LINES

#: How often panes, queue and header are redrawn from the orchestrator's state.
TICK_SECONDS = 0.1
#: Exit status for ctrl+c (the shell's own for an interrupt).
INTERRUPTED = 130
#: Main-screen keys that work on every screen: help, quit, interrupt, focus moves, the command palette.
GLOBAL_ACTIONS = frozenset({"help", "quit", "interrupt", "app.focus_next", "app.focus_previous", "app.command_palette"})


class TuiorchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tuiorch"
    BINDINGS = [b for b in MAIN_BINDINGS if b.action in GLOBAL_ACTIONS]
    COMMANDS = App.COMMANDS | {TuiorchCommands}

    def __init__(
        self,
        root: Path,
        config: Config,
        tasks: list[Task],
        task_file: Path | None,
        *,
        paused: bool = False,
        watch_tasks: bool = True,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.config = config
        self.task_file = task_file
        #: Source of "now" for elapsed times; tests and screenshots freeze it.
        self.clock: Callable[[], float] = time.time
        #: Hide values that differ run to run (durations, commit ids): for snapshots only.
        self.redact = False
        self.bridge = Bridge(self.post_message, tail_lines=PANE_MAX_LINES)
        self.orch = Orchestrator(root, config, tasks, self.bridge.sink, task_file=task_file, keep_alive=True)
        #: `[keymap]` as binding id -> keys (the help screen shows keys as bound).
        self.keymap_ids = validate_keymap(config.keymap)
        self.set_keymap(self.keymap_ids)
        #: What the app leaves on the terminal when it exits: the run's summary (see `farewell`).
        self.farewell_text = ""
        self._start_paused = paused
        self._watch = watch_tasks and task_file is not None
        self._engine: Worker[RunFinished] | None = None
        self._summary: RunFinished | None = None
        #: task -> the hunk choices made in the conflict modal, kept across closing and reopening it.
        self.resolutions: dict[str, Resolution] = {}
        self._last_task_text: str | None = None
        #: Why the key being handled does nothing (judged as it arrived), for on_key to say.
        self._key_refusal: str | None = None
        self.main_screen = MainScreen(self.orch)

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def begin(self) -> None:
        """Start the run, once the main screen is up (engine messages redraw it)."""
        if self._start_paused:
            self.orch.pause()
        if self.task_file is not None and self.task_file.exists():
            self._last_task_text = self.task_file.read_text(encoding="utf-8", errors="replace")
        self.set_interval(TICK_SECONDS, self.main_screen.render_state)
        self._engine = self._run_engine()
        if self._watch:
            self._watch_task_file()

    @property
    def queue_in_sync(self) -> bool:
        """Whether the queue pane shows the engine's current queue (not a previewed move or an older read)."""
        return self.main_screen.queue_in_sync

    def mark_dirty(self) -> None:
        self.main_screen.mark_dirty()

    # ------------------------------------------------------------------ messages up

    def on_output_ready(self, _message: messages.OutputReady) -> None:
        pass  # the bridge holds the lines; the tick writes them into the panes in one batch

    def on_progress_changed(self, _message: messages.ProgressChanged) -> None:
        pass  # the tick re-reads progress from the record

    def on_task_changed(self, _message: messages.TaskChanged) -> None:
        self.mark_dirty()

    def on_queue_updated(self, _message: messages.QueueUpdated) -> None:
        self.mark_dirty()

    def on_pool_updated(self, _message: messages.PoolUpdated) -> None:
        self.main_screen.sync_panes()

    def on_conflict_arrived(self, message: messages.ConflictArrived) -> None:
        """A conflict shows in the header, the queue and its pane, and `c` opens it: the modal never opens
        by itself over what the user is looking at."""
        self.mark_dirty()
        screen = self.screen
        if isinstance(screen, ConflictScreen) and screen.task_id == message.task:
            screen.refresh_from_engine()
            return
        self.notify(f"task {message.task} conflicts with {self.orch.base}: press c to resolve it",
                    severity="warning", timeout=8)

    def on_notice_arrived(self, message: messages.NoticeArrived) -> None:
        severity = {"error": "error", "warning": "warning"}.get(message.level, "information")
        self.notify(message.message, severity=severity)  # type: ignore[arg-type]

    def on_run_ended(self, _message: messages.RunEnded) -> None:
        self.mark_dirty()

    def on_descendant_focus(self, _event: object) -> None:
        # Focus moving on any screen (a modal opening or closing too) may change what the main footer shows.
        self.main_screen.refresh_footer()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors surface: commands, the engine, the file watcher."""
        worker = event.worker
        if event.state is WorkerState.SUCCESS and worker.group == "engine":
            self._summary = worker.result
        if event.state is not WorkerState.ERROR:
            return
        error = worker.error
        if isinstance(error, CommandError):
            self.notify(str(error), severity="warning")
        elif worker.group == "engine":
            self.notify(f"the orchestrator stopped: {error}", title="engine error", severity="error", timeout=30)
        else:
            self.notify(f"{type(error).__name__}: {error}", severity="error")
        self.mark_dirty()

    # ------------------------------------------------------------------ workers and commands

    @work(exclusive=True, group="engine", exit_on_error=False, name="engine")
    async def _run_engine(self) -> RunFinished:
        return await self.orch.run()

    @work(exclusive=True, group="watch", exit_on_error=False, name="watch tasks")
    async def _watch_task_file(self) -> None:
        assert self.task_file is not None
        async for _ in task_file_changes(self.task_file):
            self.reload_task_file()

    def run_command(self, coroutine: Awaitable[Any]) -> Worker[Any]:
        """Run an async orchestrator command off the handler; its errors reach on_worker_state_changed."""

        async def call() -> Any:
            result = await coroutine
            self.mark_dirty()
            return result

        return self.run_worker(call(), group="commands", exit_on_error=False)

    def command(self, method: Callable[..., Any], *args: Any) -> bool:
        """Call a plain orchestrator command; a refusal becomes a notification."""
        try:
            method(*args)
        except CommandError as exc:
            self.notify(str(exc), severity="warning")
            return False
        self.mark_dirty()
        return True

    # ------------------------------------------------------------------ the task file

    def task_file_name(self) -> str:
        """Where an added task goes, in words."""
        return self.task_file.name if self.task_file is not None else "this run only (no task file)"

    def _remember_task_text(self) -> None:
        """Our own write to the task file: the watcher must not take it for the user's edit."""
        assert self.task_file is not None
        with contextlib.suppress(OSError):
            self._last_task_text = self.task_file.read_text(encoding="utf-8", errors="replace")

    def reload_task_file(self) -> None:
        """Apply an edited task file, or report why it was not applied and change nothing."""
        assert self.task_file is not None
        try:
            text = self.task_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        if text is not None and text == self._last_task_text:
            return
        try:
            tasks = load_tasks(self.task_file)
        except TaskFileError as exc:
            self.notify(str(exc), title=f"{self.task_file.name} not applied", severity="error", timeout=15)
            return
        self._last_task_text = text
        if self.command(self.orch.reload_tasks, tasks):
            self.notify(f"{self.task_file.name} reloaded: {len(tasks)} tasks")

    def write_priority(self, task_id: str) -> None:
        """Write the task's priority, as the engine now has it, into the task file (formatting kept)."""
        record = self.orch.records.get(task_id)
        if self.task_file is None or record is None:
            return
        priority = record.task.priority
        try:
            write_priority(self.task_file, task_id, priority)
        except TaskFileError as exc:
            self.notify(f"priority {priority.label} applies to this run, but {exc}", severity="warning")
            return
        self._remember_task_text()
        self.notify(f"task {task_id}: priority {priority.label} (written to {self.task_file.name})", timeout=3)

    def save_new_task(self, task: Task) -> str | None:
        """Append `task` to the task file and queue it; an error message (and nothing changed) on failure."""
        problem = self._new_task_problem(task) or self._append_to_task_file(task)
        if problem:
            return problem
        try:
            self.orch.add_task(task)
        except CommandError as exc:
            return str(exc)
        self.mark_dirty()
        return None

    def _new_task_problem(self, task: Task) -> str | None:
        """Why `task` cannot join this run: its id is taken, or it depends on tasks the run does not have."""
        if task.id in self.orch.records:
            return f"a task {task.id} exists already"
        unknown = [dep for dep in task.depends if dep not in self.orch.records]
        if unknown:
            return f"task {task.id} depends on unknown task {', '.join(unknown)}"
        return None

    def _append_to_task_file(self, task: Task) -> str | None:
        """Append `task` to the task file, if the run has one; why not, when the file refused it."""
        if self.task_file is None:
            return None
        try:
            append_task(self.task_file, task)
        except TaskFileError as exc:
            return str(exc)
        self._remember_task_text()
        return None

    # ------------------------------------------------------------------ keys on every screen

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "help":
            return not isinstance(self.screen, HelpScreen)  # there, `?` closes it
        return True

    async def on_event(self, event: events.Event) -> None:
        # Judge a key when it arrives, before its action runs: afterwards a retry that worked would read as
        # "task 1 is queued; only a failed ... task is retried".
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._key_refusal = self._refusal_for(event.key)
        await super().on_event(event)

    def _refusal_for(self, key: str) -> str | None:
        """Why the main-screen key `key` would do nothing now, or None (it applies, or is no such key)."""
        if not self.screen_stack or self.screen is not self.main_screen:
            return None
        action = self._main_key_actions().get(key)
        if action is None or action in ("help", "quit", "interrupt"):
            return None
        return self.main_screen.why_not(action)

    def on_key(self, event: events.Key) -> None:
        """A main-screen key pressed where it does not apply: say why instead of doing nothing."""
        why, self._key_refusal = self._key_refusal, None
        if why is not None:
            self.notify(why, title=f"{event.key}: not now", severity="warning", timeout=4)

    def _main_key_actions(self) -> dict[str, str]:
        """key -> action name of the main screen, as bound now (after `[keymap]`)."""
        keys: dict[str, str] = {}
        for binding in MAIN_BINDINGS:
            bound = self.keymap_ids.get(binding.id, binding.key) if binding.id else binding.key
            for key in bound.split(","):
                keys.setdefault(_key_name(key.strip()), binding.action.partition("(")[0])
        return keys

    def action_help(self) -> None:
        screen = self.screen
        if screen is self.main_screen:
            main = self.main_screen
            actions = {b.id or b.action: main.applies(b.action.partition("(")[0]) for b in MAIN_BINDINGS}
            rows = key_rows(self, [*MAIN_BINDINGS, *QueueTable.BINDINGS], self.keymap_ids, actions)
            title = "keys · main screen"
        else:
            bindings = [b for b in type(screen).BINDINGS if isinstance(b, Binding)]
            rows = key_rows(self, [*bindings, MAIN_BINDINGS[0]], self.keymap_ids)
            title = f"keys · {type(screen).__name__.removesuffix('Screen').lower()} dialog"
        self.push_screen(HelpScreen(title, rows))

    # ------------------------------------------------------------------ leaving

    def exit_code(self) -> int:
        return exit_code_for(record.status for record in self.orch.records.values())

    def action_quit(self) -> None:  # type: ignore[override]
        running = sum(1 for record in self.orch.records.values() if record.status.is_active)
        if not running:
            self.shutdown()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.shutdown()

        noun, them = ("worker is", "it") if running == 1 else ("workers are", "them")
        self.push_screen(ConfirmScreen(f"{running} {noun} running. Stop {them} and quit?", yes="Stop and quit"),
                         answered)

    def action_interrupt(self) -> None:
        self.shutdown(INTERRUPTED)

    @work(exclusive=True, group="shutdown", exit_on_error=False, name="shutdown")
    async def shutdown(self, code: int | None = None) -> None:
        """Stop the orchestrator, wait until every agent is gone, then exit."""
        self.notify("stopping workers…", timeout=30)
        self.orch.stop()
        if self._engine is not None and self._engine.state in (WorkerState.PENDING, WorkerState.RUNNING):
            # An engine error was already reported by on_worker_state_changed; leaving must still work.
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self._engine.wait()
        self.farewell_text = self.farewell()
        self.exit(self.exit_code() if code is None else code)

    def farewell(self) -> str:
        """The run's summary for the terminal once the app is gone, and what still waits on the user."""
        from tuiorch.headless import format_summary

        summary = self._engine.result if self._engine is not None and self._engine.result is not None else None
        if summary is None:
            summary = self.orch.summary()
        text = format_summary(summary).lstrip("\n")
        pending = pending_lines(self.orch.records[task_id] for task_id in self.orch.order)
        if pending:
            text += f"\n\nWaiting for you in {self.orch.root}:\n" + "\n".join(pending)
        return text

    def run_editor(self, path: Path, line: int | None = None) -> bool:
        """Open `path` in $VISUAL / $EDITOR (at `line`: the `+N` argument vi, nano and emacs read) with the
        app suspended; False if no editor could run."""
        command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        argv = [*shlex.split(command), *([f"+{line}"] if line else []), str(path)]
        try:
            try:
                with self.suspend():
                    done = subprocess.run(argv, check=False)
            except SuspendNotSupported:
                # Headless (tests) or web: nothing to hand the terminal to, so run the editor as it is.
                done = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as exc:
            self.notify(f"could not run editor {argv[0]!r}: {exc}", severity="error")
            return False
        if done.returncode != 0:
            self.notify(f"editor exited {done.returncode}; {path.name} left as it is", severity="warning")
            return False
        return True


def _key_name(key: str) -> str:
    """A key as bindings and `[keymap]` write it ("?", "question_mark", "ctrl+k") as Key events name it."""
    return _character_to_key(key) if len(key) == 1 else key
