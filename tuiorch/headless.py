"""The headless front end: the same engine, one line (or one JSON object) per state change."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tuiorch import events as ev
from tuiorch.agent_output import Usage, format_usage
from tuiorch.config import Config
from tuiorch.orchestrator import CommandError, Orchestrator
from tuiorch.runlock import RunLockError
from tuiorch.tasks import Task, TaskFileError, load_tasks

EXIT_USAGE = 2
#: Seconds into a run when the task file starts being watched for edits (see _reload_on_change).
WATCH_AFTER = 2.0
EXIT_INTERRUPTED = 130


def _started(event: ev.TaskStarted) -> str:
    detail = f"started in slot {event.slot} on {event.branch}"
    return detail + (f" (attempt {event.attempt})" if event.attempt > 1 else "")


def _progress(event: ev.TaskProgress) -> str:
    if event.done is not None and event.total is not None:
        detail = f"progress {event.done}/{event.total}"
    elif event.percent is not None:
        detail = f"progress {event.percent:g}%"
    else:
        detail = "progress"
    return detail + (f" {event.text}" if event.text else "")


def _finished(event: ev.TaskFinished) -> str:
    if event.timed_out:
        return "finished: timed out"
    if event.signal:
        return f"finished: killed by {event.signal}"
    return f"finished (exit {event.exit})"


def _conflict(event: ev.ConflictFound) -> str:
    return "conflict in " + ", ".join(f"{p} ({event.kinds.get(p, 'content')})" for p in event.paths)


#: What follows "HH:MM:SS task N" (or "run") on the line of each printed event; others print their name.
_DETAILS: dict[type[ev.Event], Callable[[Any], str]] = {
    ev.TaskStarted: _started,
    ev.TaskProgress: _progress,
    ev.TaskActivity: lambda e: e.activity,
    ev.TaskFinished: _finished,
    ev.TaskStuck: lambda e: f"stuck: no output or file change for {e.idle_seconds:g}s",
    ev.ConflictPredicted: lambda e: "conflict predicted in " + ", ".join(e.paths),
    ev.ConflictCleared: lambda _e: "predicted conflict cleared",
    ev.MergeStarted: lambda _e: "merging",
    ev.CheckStarted: lambda e: f"checking {e.commit[:7]}",
    ev.Merged: lambda e: f"merged {e.commit[:7]} ({e.parents} parents)",
    ev.ConflictFound: _conflict,
    ev.CheckFailed: lambda e: f"check failed (exit {e.exit})",
    ev.TaskFailed: lambda e: f"failed: {e.reason}",
    ev.TaskEmpty: lambda _e: "empty: the agent changed nothing",
    ev.TaskCancelled: lambda _e: "cancelled",
    ev.MergeBlocked: lambda e: f"merge blocked: {e.reason}",
    ev.PoolChanged: lambda e: f"pool size {e.workers}" + (" (paused)" if e.paused else ""),
    ev.Notice: lambda e: e.message,
}


def format_event(event: ev.Event) -> str | None:
    """One human line for a state change, or None for events that are not printed."""
    if not event.printed:
        return None
    stamp = event.time.strftime("%H:%M:%S")
    if isinstance(event, ev.RunFinished):
        return f"{stamp} run finished: {event.merged} merged, {event.failed} not merged"
    task = getattr(event, "task", None)
    subject = f"task {task}" if task is not None else "run"
    describe = _DETAILS.get(type(event))
    return f"{stamp} {subject} {describe(event) if describe is not None else event.name}"


def format_summary(summary: ev.RunFinished) -> str:
    """The final table: every task, its end state, duration and merge commit; then main's new commits."""
    lines = ["", "Summary", "-------"]
    width = max((len(str(t["id"])) for t in summary.tasks), default=2)
    lines += [_summary_row(row, width) for row in summary.tasks]
    lines.append("")
    lines.append(f"Commits on main this run ({len(summary.commits)}):")
    lines += [f"  {commit['commit']} {commit['subject']}" for commit in summary.commits]
    lines.append("")
    total = format_usage(Usage.from_dict(summary.usage))
    lines.append(f"{summary.merged} merged, {summary.failed} not merged" + (f"; agents used {total}" if total else ""))
    return "\n".join(lines)


def _summary_row(row: dict[str, Any], width: int) -> str:
    """One task of the summary table; `width` is the widest task id's."""
    duration = f"{row['duration']:.1f}s" if "duration" in row else "-"
    commit = str(row.get("commit", ""))[:7] or "-"
    reason = f"  {row['reason']}" if row.get("reason") and row["status"] != "merged" else ""
    usage = format_usage(Usage.from_dict(row.get("usage")))
    spent = f"  [{usage}]" if usage else ""
    return f"  {row['id']:<{width}}  {row['status']:<13} {duration:>8}  {commit:<7}  {row['title']}{spent}{reason}"


class HeadlessPrinter:
    """The sink for the headless run: prints each event as it comes."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def __call__(self, event: ev.Event) -> None:
        if self.as_json:
            if not event.printed:
                return
            self.out.write(json.dumps(event.to_dict(), default=str) + "\n")
        else:
            line = format_event(event)
            if line is None:
                return
            # A file name that is not UTF-8 reaches here with surrogate escapes; print what can be shown.
            line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            self.out.write(line + "\n")
            if isinstance(event, ev.RunFinished):
                self.out.write(format_summary(event) + "\n")
        self.out.flush()


def run_headless(
    root: Path, config: Config, tasks: list[Task], *, task_file: Path | None, as_json: bool, out: TextIO | None = None
) -> int:
    """Run the pool to the end; return the exit code (0 every task merged, 1 not, 2 bad input, 130 interrupted)."""
    printer = HeadlessPrinter(out or sys.stdout, as_json=as_json)
    orchestrator = Orchestrator(root, config, tasks, printer, task_file=task_file)

    async def main() -> int:
        interrupted = False

        def on_signal() -> None:
            nonlocal interrupted
            interrupted = True
            orchestrator.stop()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        watcher = asyncio.create_task(_reload_on_change(orchestrator, task_file, printer)) if task_file else None
        try:
            summary = await orchestrator.run()
        except RunLockError as exc:
            print(f"tuiorch: {exc}", file=sys.stderr)
            return EXIT_USAGE
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        return EXIT_INTERRUPTED if interrupted else summary.exit_code

    return asyncio.run(main())


async def _reload_on_change(orchestrator: Orchestrator, task_file: Path, printer: HeadlessPrinter) -> None:
    """Apply edits to the task file while the run goes on, as the app does; a broken edit changes nothing.

    The watch begins WATCH_AFTER seconds into the run, so a run that is over by then never pays for it (its
    thread and imports, ~30 ms before the first agent could start); an edit made before it begins is
    applied then.
    """
    last = _text_of(task_file)
    await asyncio.sleep(WATCH_AFTER)
    last = _apply_edit(orchestrator, task_file, printer, last)
    from tuiorch.taskwatch import task_file_changes  # watchfiles, only once the watch begins

    async for _ in task_file_changes(task_file):
        last = _apply_edit(orchestrator, task_file, printer, last)


def _apply_edit(orchestrator: Orchestrator, task_file: Path, printer: HeadlessPrinter, last: bytes | None) -> bytes | None:
    """Reload the task file if its text differs from `last`; the text now applied."""
    text = _text_of(task_file)
    if text is None or text == last:
        return last
    try:
        tasks = load_tasks(task_file)
        orchestrator.reload_tasks(tasks)
    except (TaskFileError, CommandError) as exc:
        printer(ev.Notice(message=f"{task_file.name} not applied: {exc}", level="error"))
        return last
    printer(ev.Notice(message=f"{task_file.name} reloaded: {len(tasks)} tasks"))
    return text


def _text_of(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
