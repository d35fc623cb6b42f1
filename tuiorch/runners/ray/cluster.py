"""Helpers of the Ray runner's side of the cluster: reaching it, Ray's messages, the committer."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any


def cluster_messages_to_stderr() -> None:
    """Ray's driver prints the cluster's error messages (a node marked dead, ...) on stdout, which is
    headless tuiorch's JSON event stream: they go to stderr instead."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "tuiorch", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.tuiorch = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def reachable(address: str, timeout: float = 5.0) -> None:
    """OSError unless something accepts connections at "HOST:PORT"."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError('expected "HOST:PORT"')
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass


def identity(root: Path) -> dict[str, str]:
    """The central repository's committer, for leftovers committed on a node (which has no identity)."""
    done = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], cwd=root, capture_output=True, text=True)
    name, email = "tuiorch", "tuiorch@localhost"
    if done.returncode == 0 and "<" in done.stdout:
        name = done.stdout.split("<")[0].strip() or name
        email = done.stdout.split("<")[1].split(">")[0].strip() or email
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
