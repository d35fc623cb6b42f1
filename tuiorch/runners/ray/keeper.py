"""Ends an agent's process group when the Ray worker that started it dies.

Ray kills only a worker's direct children, and an agent runs in its own session (so cancel can signal
its whole group): without this, a worker killed -9 (node agent restart, OOM) would leave the agent and
its children running. Started detached beside each agent: `python -m tuiorch.runners.ray.keeper
WORKER_PID PGID`; it exits as soon as the group is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL = 0.5
GRACE = 3.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, grace: float = GRACE) -> None:
    """SIGTERM (Ray workers block SIGINT, and agents inherit that), then SIGKILL after `grace`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        give_up = time.monotonic() + wait
        while time.monotonic() < give_up and group_alive(pgid):
            time.sleep(0.05)


def keep(worker_pid: int, pgid: int) -> None:
    while group_alive(pgid):
        if not alive(worker_pid):
            end_group(pgid)
            return
        time.sleep(POLL)


if __name__ == "__main__":
    # Ray ends a dying worker's direct children: the keeper leaves that line at once (the worker reaps
    # the first process), so it outlives the worker to do its job.
    if os.fork() > 0:
        os._exit(0)
    keep(int(sys.argv[1]), int(sys.argv[2]))
