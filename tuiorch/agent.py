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

__all__ = ["AgentExit", "AgentProcess", "Progress", "parse_progress"]

#: Bytes asked for per read; a burst of many small lines arrives as one chunk.
READ_CHUNK = 256 * 1024
#: Lines longer than this reach `on_line` and `tail` cut short (the log file keeps every byte).
MAX_LINE_CHARS = 64 * 1024
#: How often the supervisor looks at the process (exit, timeout, cancel, stuck).
TICK = 0.05
#: Directories never walked when looking for file changes: large and not the agent's own work.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache"})
#: Upper bound on entries looked at per scan, so a huge worktree cannot stall stuck detection.
MAX_SCAN_ENTRIES = 50_000
#: Prefix of each stderr line in the log file.
STDERR_MARK = "[stderr] "
#: An unfinished line is held back from the log (so the other stream cannot land inside it) up to this size.
LOG_HOLD_BYTES = 1024 * 1024


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


class AgentProcess:
    """Runs one agent command and supervises it until it ends. One `run()` per instance."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path | str,
        log_path: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        tail_lines: int = 200,
        on_line: Callable[[str], None] | None = None,
        timeout: float | None = None,
        stuck_after: float | None = None,
        on_stuck: Callable[[float], None] | None = None,
        watch_dir: Path | None = None,
        on_unstuck: Callable[[], None] | None = None,
        kill_grace: float = 3.0,
        on_spawn: Callable[[int], None] | None = None,
        on_lines: Callable[[list[str]], None] | None = None,
        on_stderr: Callable[[list[str]], None] | None = None,
        stdin_path: Path | str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("agent command is empty")
        self.argv = [str(arg) for arg in argv]
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.on_line = on_line
        self.timeout = timeout if timeout and timeout > 0 else None
        self.stuck_after = stuck_after if stuck_after and stuck_after > 0 else None
        self.on_stuck = on_stuck
        self.on_unstuck = on_unstuck
        self.watch_dir = Path(watch_dir) if watch_dir is not None else self.cwd
        self.kill_grace = kill_grace
        #: Told the process group id as soon as the process exists (the run state records it for resume).
        self.on_spawn = on_spawn
        #: Takes each burst of lines at once (preferred over on_line for busy agents).
        self.on_lines = on_lines
        #: Takes each burst of stderr lines; without it they go where stdout lines go.
        self.on_stderr = on_stderr
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
            _signal_group(self.pgid, signal.SIGTERM)

    async def run(self) -> AgentExit:
        if self._started:
            raise RuntimeError("AgentProcess.run() may be called once")
        self._started = True
        if self._cancel_requested:
            return AgentExit(code=None, cancelled=True)

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                stdin = open(self.stdin_path, "rb") if self.stdin_path is not None else None  # noqa: SIM115
            except OSError as exc:
                message = f"cannot read the prompt file {self.stdin_path}: {exc.strerror or exc}"
                log.write(f"tuiorch: {message}\n".encode())
                self._emit_lines([f"tuiorch: {message}"])
                return AgentExit(code=127, error=message)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    cwd=self.cwd,
                    stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    # PWD: some CLIs take their project folder from it rather than from their cwd.
                    env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1", "PWD": str(self.cwd.absolute())},
                    start_new_session=True,
                    limit=READ_CHUNK,
                )
            except OSError as exc:
                message = _start_error(self.argv[0], self.cwd, exc)
                log.write(f"tuiorch: {message}\n".encode())
                self._emit_lines([f"tuiorch: {message}"])
                return AgentExit(code=127, error=message)
            finally:
                if stdin is not None:
                    stdin.close()

            self.pid = self.pgid = proc.pid
            if self.on_spawn is not None:
                self.on_spawn(proc.pid)
            if self._cancel_requested:  # cancel() came while the process was being spawned
                _signal_group(proc.pid, signal.SIGTERM)
            assert proc.stdout is not None and proc.stderr is not None
            pump = asyncio.create_task(self._pump_both(proc.stdout, proc.stderr, log))
            try:
                return await self._supervise(proc, pump)
            except BaseException:
                # Cancelled (or a callback raised): nothing of the group may outlive us.
                _signal_group(proc.pid, signal.SIGKILL)
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(_wait_exit(proc), 2.0)
                raise

    # -- internals --------------------------------------------------------------------------------------

    async def _supervise(self, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> AgentExit:
        started = time.monotonic()
        deadline = started + self.timeout if self.timeout else None
        timed_out = False
        scan_every = min(5.0, max(0.1, (self.stuck_after or 0) / 4))
        next_scan = started + scan_every
        last_mtime = await asyncio.to_thread(_max_mtime, self.watch_dir) if self.stuck_after else 0.0

        while proc.returncode is None:
            if pump.done() and not pump.cancelled() and (failure := pump.exception()) is not None:
                raise failure  # on_line raised or the log cannot be written: run() kills the group
            now = time.monotonic()
            if self._cancel_requested or (deadline is not None and now >= deadline):
                timed_out = not self._cancel_requested
                await self._kill_group(proc.pid, proc)
                break
            if self.stuck_after:
                if now >= next_scan:
                    mtime = await asyncio.to_thread(_max_mtime, self.watch_dir)
                    if mtime > last_mtime:
                        last_mtime = mtime
                        self._activity(time.monotonic())
                    next_scan = time.monotonic() + scan_every
                idle = time.monotonic() - self.last_activity
                if not self.stuck and idle >= self.stuck_after:
                    self.stuck = True
                    if self.on_stuck:
                        self.on_stuck(idle)
            await asyncio.sleep(TICK)

        await _wait_exit(proc)
        # The main process is gone; children that kept the pipe open must not keep us (or themselves) alive.
        if not pump.done():
            await self._kill_group(proc.pid, proc)
        try:
            await asyncio.wait_for(asyncio.shield(pump), 5.0)
        except TimeoutError:
            pump.cancel()  # a process outside our group holds the pipe; give up on the rest of its output
        code = proc.returncode
        assert code is not None
        if code < 0:
            return AgentExit(
                code=None, signal=_signal_name(-code), timed_out=timed_out, cancelled=self._cancel_requested
            )
        return AgentExit(code=code, timed_out=timed_out, cancelled=self._cancel_requested)

    async def _kill_group(self, pgid: int, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the group, wait up to the grace period for it to empty, then SIGKILL."""
        if not _signal_group(pgid, signal.SIGTERM):
            return
        give_up = time.monotonic() + self.kill_grace
        while time.monotonic() < give_up:
            if proc.returncode is not None and not _group_alive(pgid):
                return
            await asyncio.sleep(TICK)
        _signal_group(pgid, signal.SIGKILL)
        # SIGKILL cannot be caught, but dying takes a moment; don't report "ended" before it has.
        give_up = time.monotonic() + 2.0
        while _group_alive(pgid) and time.monotonic() < give_up:
            await asyncio.sleep(0.01)

    async def _pump_both(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader, log: BinaryIO) -> None:
        out = asyncio.ensure_future(self._pump(stdout, _LogLines(log, b""), stderr=False))
        err = asyncio.ensure_future(self._pump(stderr, _LogLines(log, STDERR_MARK.encode()), stderr=True))
        try:
            await asyncio.gather(out, err)
        finally:
            out.cancel()
            err.cancel()

    async def _pump(self, stream: asyncio.StreamReader, log: _LogLines, *, stderr: bool) -> None:
        """Copy one stream to the log (whole lines, flushed per read burst) and split it into lines.

        A burst is decoded and split in one go (a flooding agent prints thousands of lines a read);
        a line longer than MAX_LINE_CHARS is cut in what reaches `on_line`/`tail`, never in the log.
        """
        pending = bytearray()  # the start of a line whose end has not arrived yet (bounded)
        dropped = 0  # bytes of that line not kept in `pending` (they are in the log)
        try:
            while True:
                chunk = await stream.read(READ_CHUNK)
                if not chunk:
                    break
                log.write(chunk)
                self._activity(time.monotonic())
                self.last_output = self.last_activity
                last_newline = chunk.rfind(b"\n")
                if last_newline < 0:
                    dropped += _append_bounded(pending, chunk)
                    continue
                first_newline = chunk.find(b"\n")
                dropped += _append_bounded(pending, chunk[:first_newline])
                lines = [_line_text(pending, dropped)]
                if first_newline < last_newline:
                    body = chunk[first_newline + 1 : last_newline].decode("utf-8", errors="replace")
                    lines += [_cut(line.rstrip("\r")) for line in body.split("\n")]
                self._emit_lines(lines, stderr=stderr)
                pending.clear()
                dropped = _append_bounded(pending, chunk[last_newline + 1 :])
            if pending or dropped:
                self._emit_lines([_line_text(pending, dropped)], stderr=stderr)
        finally:
            log.close()

    def _emit_lines(self, lines: list[str], *, stderr: bool = False) -> None:
        self.lines += len(lines)
        self.tail.extend(lines)
        if stderr and self.on_stderr is not None:
            self.on_stderr(lines)
        elif self.on_lines is not None:
            self.on_lines(lines)
        elif self.on_line is not None:
            for line in lines:
                self.on_line(line)

    def _activity(self, now: float) -> None:
        self.last_activity = now
        if self.stuck:
            self.stuck = False
            if self.on_unstuck:
                self.on_unstuck()


class _LogLines:
    """One stream's bytes into the shared log file, a whole line at a time.

    The unfinished end of a line is held back (up to LOG_HOLD_BYTES), so the other stream's lines land
    between lines, never inside one. `mark` starts every line (stderr's).
    """

    def __init__(self, log: BinaryIO, mark: bytes) -> None:
        self.log = log
        self.mark = mark
        self.held = bytearray()
        self.at_line_start = True

    def write(self, chunk: bytes) -> None:
        self.held += chunk
        cut = self.held.rfind(b"\n") + 1
        if len(self.held) - cut > LOG_HOLD_BYTES:
            cut = len(self.held)  # a line this long is written as it comes
        self._out(cut)

    def close(self) -> None:
        """The stream ended: write what is held (a marked line gets its newline)."""
        if self.held and self.mark:
            self.held += b"\n"
        self._out(len(self.held))

    def _out(self, cut: int) -> None:
        if cut <= 0 or self.log.closed:  # closed: the run was cancelled and has gone
            return
        data = bytes(self.held[:cut])
        del self.held[:cut]
        if self.mark:
            ends_line = data.endswith(b"\n")
            body = data[:-1] if ends_line else data
            data = body.replace(b"\n", b"\n" + self.mark) + (b"\n" if ends_line else b"")
            if self.at_line_start:
                data = self.mark + data
            self.at_line_start = ends_line
        self.log.write(data)
        self.log.flush()


async def _wait_exit(proc: asyncio.subprocess.Process) -> None:
    # Polls returncode: Process.wait() on Python 3.11 also waits for the pipes to close, which a
    # surviving child can hold open forever.
    while proc.returncode is None:
        await asyncio.sleep(TICK)


def _append_bounded(pending: bytearray, data: bytes) -> int:
    """Append what fits under MAX_LINE_CHARS; return how many bytes did not fit."""
    room = max(0, MAX_LINE_CHARS - len(pending))
    pending += data[:room]
    return max(0, len(data) - room)


def _line_text(data: bytearray, dropped: int) -> str:
    text = data.decode("utf-8", errors="replace").rstrip("\r")
    return text + f" [… {dropped} more bytes in the log]" if dropped else text


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return line[:MAX_LINE_CHARS] + f" [… {len(line) - MAX_LINE_CHARS} more characters in the log]"


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal the group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies or a reused id we do not own remain
        return False
    return True


def kill_stale_group(pgid: int, owned_under: Path) -> bool:
    """Kill what is left of a dead run's agent group, but only processes working under `owned_under`.

    The pgid came from a saved run state; by now the id may belong to someone else's processes,
    so a group is killed only if a member's cwd is inside tuiorch's worktrees.
    """
    owned_under = Path(owned_under).resolve()
    ours = False
    for pid in _group_members(pgid):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd == owned_under or owned_under in cwd.parents:
            ours = True
            break
    if not ours:
        return False
    _signal_group(pgid, signal.SIGKILL)
    return True


def _group_members(pgid: int) -> list[int]:
    members: list[int] = []
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return members
    for entry in os.scandir(proc_dir):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the group? Orphaned zombies may linger unreaped."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc").is_dir():
        return True
    return bool(_group_members(pgid))


def _max_mtime(root: Path) -> float:
    """Newest mtime of any file or directory under root (skipping .git and the like), bounded work."""
    try:
        newest = root.stat().st_mtime
    except OSError:
        return 0.0
    seen = 0
    stack = [str(root)]
    while stack and seen < MAX_SCAN_ENTRIES:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    newest = max(newest, info.st_mtime)
                    if entry.is_dir(follow_symlinks=False) and entry.name not in SKIP_DIRS:
                        stack.append(entry.path)
        except OSError:
            continue
    return newest


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _start_error(program: str, cwd: Path, exc: OSError) -> str:
    if not cwd.is_dir():
        return f"cannot start agent: working directory does not exist: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start agent: command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"cannot start agent: permission denied: {program}"
    return f"cannot start agent {program}: {exc.strerror or exc}"
