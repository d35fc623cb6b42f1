"""One agent process: argv (never a shell), own process group, output streaming, stuck and timeout.

The whole process group is the unit of control: a timeout, a cancel, or the main process exiting while
children still hold the pipe all end with the group killed, so `run()` never leaves anything behind.

stdout and stderr are read through two pipes: CLIs print warnings on stderr in the middle of a streamed
JSON line, and one shared pipe would cut that line in two. Both reach the log file whole, line by line,
stderr lines marked with STDERR_MARK.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tuiorch.agent_output import Progress, parse_progress
from tuiorch.agent_streams import MAX_LINE_CHARS, STDERR_MARK, LineSplitter, LogLines
from tuiorch.procs import group_alive, signal_group, signal_name

__all__ = [
    "MAX_LINE_CHARS",
    "STDERR_MARK",
    "AgentExit",
    "AgentProcess",
    "ProcessHooks",
    "Progress",
    "parse_progress",
]

#: Bytes asked for per read; a burst of many small lines arrives as one chunk.
READ_CHUNK = 256 * 1024
#: How often the supervisor looks at the process (exit, timeout, cancel, stuck).
TICK = 0.05
#: Directories never walked when looking for file changes: large and not the agent's own work.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache"})
#: Upper bound on entries looked at per scan, so a huge worktree cannot stall stuck detection.
MAX_SCAN_ENTRIES = 50_000


@dataclass(frozen=True)
class AgentExit:
    """How an agent run ended. `code` is None when a signal ended it (then `signal` names it)."""

    code: int | None
    signal: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    #: Set when the process could not be started at all (e.g. "command not found: claude").
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0 and not (self.timed_out or self.cancelled)


def _ignore_lines(lines: list[str]) -> None:
    return None


@dataclass
class ProcessHooks:
    """How a running process reaches its owner; all called in the event loop's thread."""

    #: Each burst of stdout lines at once (a flooding agent prints thousands a read).
    on_lines: Callable[[list[str]], None] = _ignore_lines
    #: Each burst of stderr lines; None: they go to `on_lines` too.
    on_stderr: Callable[[list[str]], None] | None = None
    #: No output and no file change under the watched folder for `stuck_after` seconds (idle seconds).
    on_stuck: Callable[[float], None] | None = None
    #: A stuck process shows life again (output or a file change).
    on_unstuck: Callable[[], None] | None = None
    #: The process group id, as soon as the process exists (the run state records it for resume).
    on_spawn: Callable[[int], None] | None = None


@dataclass
class _Clock:
    """The supervisor's deadlines for one run."""

    deadline: float | None
    scan_every: float
    next_scan: float
    last_mtime: float

    def past_deadline(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class AgentProcess:
    """Runs one agent command and supervises it until it ends. One `run()` per instance."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path | str,
        log_path: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        hooks: ProcessHooks | None = None,
        timeout: float | None = None,
        stuck_after: float | None = None,
        watch_dir: Path | None = None,
        kill_grace: float = 3.0,
        stdin_path: Path | str | None = None,
        tail_lines: int = 200,
    ) -> None:
        if not argv:
            raise ValueError("agent command is empty")
        self.argv = [str(arg) for arg in argv]
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.hooks = hooks or ProcessHooks()
        self.timeout = _positive(timeout)
        self.stuck_after = _positive(stuck_after)
        self.watch_dir = Path(watch_dir) if watch_dir is not None else self.cwd
        self.kill_grace = kill_grace
        #: A file given to the process as its stdin (a prompt too long for argv); else stdin is empty.
        self.stdin_path = Path(stdin_path) if stdin_path is not None else None

        self.pid: int | None = None
        self.pgid: int | None = None
        self.tail: deque[str] = deque(maxlen=max(1, tail_lines))
        self.lines = 0
        self.last_output = time.monotonic()
        #: Last time output arrived or a file under watch_dir changed.
        self.last_activity = self.last_output
        self.stuck = False

        self._cancel_requested = False
        self._started = False

    # -- public control ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the agent: SIGTERM to the group now, SIGKILL after the grace period (done by `run`)."""
        self._cancel_requested = True
        if self.pgid is not None:
            signal_group(self.pgid, signal.SIGTERM)

    async def run(self) -> AgentExit:
        if self._started:
            raise RuntimeError("AgentProcess.run() may be called once")
        self._started = True
        if self._cancel_requested:
            return AgentExit(code=None, cancelled=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            proc = await self._spawn(log)
            if isinstance(proc, AgentExit):
                return proc
            assert proc.stdout is not None and proc.stderr is not None
            pump = asyncio.create_task(self._pump_both(proc.stdout, proc.stderr, log))
            try:
                return await self._supervise(proc, pump)
            except BaseException:
                # Cancelled (or a callback raised): nothing of the group may outlive us.
                signal_group(proc.pid, signal.SIGKILL)
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(_wait_exit(proc), 2.0)
                raise

    # -- internals --------------------------------------------------------------------------------------

    async def _spawn(self, log: BinaryIO) -> asyncio.subprocess.Process | AgentExit:
        """Start the process in a group of its own; an AgentExit with `error` when it cannot start."""
        try:
            stdin = open(self.stdin_path, "rb") if self.stdin_path is not None else None  # noqa: SIM115
        except OSError as exc:
            return self._not_started(
                log, f"cannot read the prompt file {self.stdin_path}: {exc.strerror or exc}"
            )
        try:
            proc = await self._exec(stdin or asyncio.subprocess.DEVNULL)
        except OSError as exc:
            return self._not_started(log, _start_error(self.argv[0], self.cwd, exc))
        finally:
            if stdin is not None:
                stdin.close()
        self._spawned(proc.pid)
        return proc

    async def _exec(self, stdin: BinaryIO | int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # PWD: some CLIs take their project folder from it rather than from their cwd.
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1", "PWD": str(self.cwd.absolute())},
            start_new_session=True,
            limit=READ_CHUNK,
        )

    def _spawned(self, pid: int) -> None:
        """The process exists, in a group of its own: record it and tell the owner."""
        self.pid = self.pgid = pid
        if self.hooks.on_spawn is not None:
            self.hooks.on_spawn(pid)
        if self._cancel_requested:  # cancel() came while the process was being spawned
            signal_group(pid, signal.SIGTERM)

    def _not_started(self, log: BinaryIO, message: str) -> AgentExit:
        log.write(f"tuiorch: {message}\n".encode())
        self._emit_lines([f"tuiorch: {message}"])
        return AgentExit(code=127, error=message)

    async def _supervise(self, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> AgentExit:
        clock = self._start_clock()
        timed_out = False
        ended = _ExitWatch(proc.pid)
        try:
            while proc.returncode is None:
                _raise_failure(pump)  # a hook raised or the log cannot be written: run() kills the group
                now = time.monotonic()
                if self._cancel_requested or clock.past_deadline(now):
                    timed_out = not self._cancel_requested
                    await self._kill_group(proc.pid, proc)
                    break
                if self.stuck_after:
                    await self._judge_stuck(clock, now)
                await ended.tick()
        finally:
            ended.close()
        await self._drain(proc, pump)
        return self._exit_of(proc, timed_out)

    def _start_clock(self) -> _Clock:
        started = time.monotonic()
        scan_every = min(5.0, max(0.1, (self.stuck_after or 0) / 4))
        # A file changed from now on is activity: the files' own clock (which lags this one by at most a
        # tick) is compared with now, so no scan of the whole worktree is needed before the agent runs.
        last_mtime = time.time()
        deadline = started + self.timeout if self.timeout else None
        return _Clock(
            deadline=deadline, scan_every=scan_every, next_scan=started + scan_every, last_mtime=last_mtime
        )

    async def _judge_stuck(self, clock: _Clock, now: float) -> None:
        """A file changed under watch_dir counts as activity; no activity for stuck_after: stuck (once)."""
        assert self.stuck_after is not None
        if now >= clock.next_scan:
            await self._scan_watch_dir(clock)
        idle = time.monotonic() - self.last_activity
        if not self.stuck and idle >= self.stuck_after:
            self._became_stuck(idle)

    def _became_stuck(self, idle: float) -> None:
        self.stuck = True
        if self.hooks.on_stuck:
            self.hooks.on_stuck(idle)

    async def _scan_watch_dir(self, clock: _Clock) -> None:
        mtime = await asyncio.to_thread(_max_mtime, self.watch_dir)
        if mtime > clock.last_mtime:
            clock.last_mtime = mtime
            self._activity(time.monotonic())
        clock.next_scan = time.monotonic() + clock.scan_every

    async def _drain(self, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> None:
        await _wait_exit(proc)
        # The main process is gone; children that kept the pipe open must not keep us (or themselves) alive.
        if not pump.done():
            await self._kill_group(proc.pid, proc)
        try:
            await asyncio.wait_for(asyncio.shield(pump), 5.0)
        except TimeoutError:
            pump.cancel()  # a process outside our group holds the pipe; give up on the rest of its output

    def _exit_of(self, proc: asyncio.subprocess.Process, timed_out: bool) -> AgentExit:
        code = proc.returncode
        assert code is not None
        if code < 0:
            return AgentExit(
                code=None, signal=signal_name(-code), timed_out=timed_out, cancelled=self._cancel_requested
            )
        return AgentExit(code=code, timed_out=timed_out, cancelled=self._cancel_requested)

    async def _kill_group(self, pgid: int, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the group, wait up to the grace period for it to empty, then SIGKILL."""
        if not signal_group(pgid, signal.SIGTERM) or await self._ended_in_grace(pgid, proc):
            return
        signal_group(pgid, signal.SIGKILL)
        # SIGKILL cannot be caught, but dying takes a moment; don't report "ended" before it has.
        give_up = time.monotonic() + 2.0
        while group_alive(pgid) and time.monotonic() < give_up:
            await asyncio.sleep(0.01)

    async def _ended_in_grace(self, pgid: int, proc: asyncio.subprocess.Process) -> bool:
        """True once the process has exited and its group is empty, False if the grace period runs out."""
        give_up = time.monotonic() + self.kill_grace
        while time.monotonic() < give_up:
            if proc.returncode is not None and not group_alive(pgid):
                return True
            await asyncio.sleep(TICK)
        return False

    async def _pump_both(
        self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader, log: BinaryIO
    ) -> None:
        out = asyncio.ensure_future(self._pump(stdout, LogLines(log, b""), stderr=False))
        err = asyncio.ensure_future(self._pump(stderr, LogLines(log, STDERR_MARK.encode()), stderr=True))
        try:
            await asyncio.gather(out, err)
        finally:
            out.cancel()
            err.cancel()

    async def _pump(self, stream: asyncio.StreamReader, log: LogLines, *, stderr: bool) -> None:
        """Copy one stream to the log (whole lines, flushed per read burst) and hand its lines on.

        A line longer than MAX_LINE_CHARS is cut in what reaches `on_line`/`tail`, never in the log.
        """
        splitter = LineSplitter()
        try:
            while chunk := await stream.read(READ_CHUNK):
                log.write(chunk)
                self._activity(time.monotonic())
                self.last_output = self.last_activity
                self._emit_lines(splitter.feed(chunk), stderr=stderr)
            self._emit_lines(splitter.finish(), stderr=stderr)
        finally:
            log.close()

    def _emit_lines(self, lines: list[str], *, stderr: bool = False) -> None:
        if not lines:
            return
        self.lines += len(lines)
        self.tail.extend(lines)
        if stderr and self.hooks.on_stderr is not None:
            self.hooks.on_stderr(lines)
        else:
            self.hooks.on_lines(lines)

    def _activity(self, now: float) -> None:
        self.last_activity = now
        if self.stuck:
            self.stuck = False
            if self.hooks.on_unstuck:
                self.hooks.on_unstuck()


def _positive(seconds: float | None) -> float | None:
    """A limit in seconds; None (no limit) for None, zero or less."""
    return seconds if seconds and seconds > 0 else None


def _raise_failure(task: asyncio.Task[None]) -> None:
    """Raise what ended `task`, if an exception did."""
    if task.done() and not task.cancelled() and (failure := task.exception()) is not None:
        raise failure


class _ExitWatch:
    """Wakes the supervisor as soon as the agent's process ends, through a pidfd that becomes readable
    then (Linux), instead of at the next tick: that was up to 50 ms between an agent's end and its
    result, its merge and the next task in its slot. Without a pidfd it sleeps a tick, as before."""

    def __init__(self, pid: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._ended = asyncio.Event()
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # no pidfd_open, or the process is gone already
            self._fd = os.pidfd_open(pid)
            self._loop.add_reader(self._fd, self._ended.set)

    async def tick(self) -> None:
        """Return after TICK seconds, or at once when the process has ended (its exit status follows
        within moments, from asyncio's child watcher)."""
        if self._ended.is_set():
            await asyncio.sleep(0.001)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), TICK)

    def close(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


async def _wait_exit(proc: asyncio.subprocess.Process) -> None:
    # Polls returncode: Process.wait() on Python 3.11 also waits for the pipes to close, which a
    # surviving child can hold open forever.
    while proc.returncode is None:
        await asyncio.sleep(TICK)


def _max_mtime(root: Path) -> float:
    """Newest mtime of any file or directory under root (skipping .git and the like), bounded work."""
    try:
        newest = root.stat().st_mtime
    except OSError:
        return 0.0
    seen = 0
    stack = [str(root)]
    while stack and seen < MAX_SCAN_ENTRIES:
        count, folder_newest = _scan_folder(stack.pop(), stack)
        seen += count
        newest = max(newest, folder_newest)
    return newest


def _scan_folder(folder: str, to_walk: list[str]) -> tuple[int, float]:
    """(entries seen, their newest mtime) in one folder, whose subfolders worth walking join `to_walk`."""
    seen, newest = 0, float("-inf")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            seen += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            newest = max(newest, info.st_mtime)
            if entry.is_dir(follow_symlinks=False) and entry.name not in SKIP_DIRS:
                to_walk.append(entry.path)
    return seen, newest


def _start_error(program: str, cwd: Path, exc: OSError) -> str:
    if not cwd.is_dir():
        return f"cannot start agent: working directory does not exist: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start agent: command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"cannot start agent: permission denied: {program}"
    return f"cannot start agent {program}: {exc.strerror or exc}"
