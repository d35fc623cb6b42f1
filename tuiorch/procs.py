"""Process groups: each agent runs in one, and the group is the unit tuiorch signals and kills.

Also how a restarted tuiorch finds what a dead run left running: by the process group it saved, or by
the TUIORCH_GIT_DIR marker every agent carries in its environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

#: Environment variable marking a process as an agent of the tuiorch run on this git directory.
AGENT_MARKER = "TUIORCH_GIT_DIR"
#: Where Linux lists the running processes, a folder each.
PROC = Path("/proc")


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal the group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):  # gone, or only zombies or a reused id not ours remain
        return False
    return True


def process_dirs() -> Iterator[tuple[int, str]]:
    """(pid, its /proc folder) of every process; nothing where there is no /proc."""
    if not PROC.is_dir():
        return
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            yield int(entry.name), entry.path


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in the group, read from /proc; empty where there is no /proc."""
    return [pid for pid, folder in process_dirs() if _live_in_group(folder, pgid)]


def _live_in_group(folder: str, pgid: int) -> bool:
    """True if the process at /proc/`folder` is in group `pgid` and no zombie."""
    try:
        stat = Path(folder, "stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2 :].split()
    return len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X")


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the group? Orphaned zombies may linger unreaped."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not PROC.is_dir():
        return True
    return bool(group_members(pgid))


def kill_stale_group(pgid: int, owned_under: Path) -> bool:
    """Kill what is left of a dead run's agent group, but only processes working under `owned_under`.

    The pgid came from a saved run state; by now the id may belong to someone else's processes,
    so a group is killed only if a member's cwd is inside tuiorch's worktrees.
    """
    owned_under = Path(owned_under).resolve()
    for pid in group_members(pgid):
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd == owned_under or owned_under in cwd.parents:
            signal_group(pgid, signal.SIGKILL)
            return True
    return False


def kill_orphan_agents(git_dir: Path) -> list[int]:
    """Kill the process groups of agents a dead run started for this repository; return their pgids.

    Agents carry AGENT_MARKER in their environment, which identifies them even when the dead run
    never got to record their process group.
    """
    marker = f"{AGENT_MARKER}={Path(git_dir).resolve()}".encode()
    own = os.getpgid(0)
    killed: list[int] = []
    for pid, folder in process_dirs():
        pgid = _marked_group(pid, folder, marker)
        if pgid is None or pgid in killed or pgid == own:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
    return killed


def _marked_group(pid: int, folder: str, marker: bytes) -> int | None:
    """The process group of process `pid` if `marker` is in its environment, else None."""
    try:
        environ = Path(folder, "environ").read_bytes()
    except OSError:
        return None
    if marker not in environ.split(b"\0"):
        return None
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
