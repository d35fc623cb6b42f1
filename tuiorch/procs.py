"""Process groups: each agent runs in one, and the group is the unit tuiorch signals and kills.

Also how a restarted tuiorch finds what a dead run left running: by the process group it saved, or by
the TUIORCH_GIT_DIR marker every agent carries in its environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

#: Environment variable marking a process as an agent of the tuiorch run on this git directory.
AGENT_MARKER = "TUIORCH_GIT_DIR"


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal the group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies or a reused id we do not own remain
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in the group, read from /proc; empty where there is no /proc."""
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


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the group? Orphaned zombies may linger unreaped."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc").is_dir():
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
    proc = Path("/proc")
    if not proc.is_dir():
        return killed
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker not in environ.split(b"\0"):
            continue
        try:
            pgid = os.getpgid(int(entry.name))
        except ProcessLookupError:
            continue
        if pgid in killed or pgid == own:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
    return killed


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
