"""A real two-node Ray cluster for the Ray runner's tests, started once per session, always stopped.

Ray listens on every interface whatever address it is given, so the whole session moves into a network
namespace of its own (only loopback) before the cluster starts: nothing outside the machine, or on it,
can reach the cluster. The worker node runs in a mount namespace where the folder holding the central
repositories is an empty tmpfs: commits reach it only through Ray, as they would on another machine.
Agents are pinned to the worker node by its `tuiorch_agent` resource.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT = 6390
ADDRESS = f"127.0.0.1:{PORT}"
AGENT_RESOURCE = "tuiorch_agent"
#: Small object stores: bundles are kilobytes; Ray's minimum is about 75 MB.
STORE_BYTES = 80 * 1024 * 1024
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def _interfaces() -> list[str]:
    # /sys/class/net shows the namespace sysfs was mounted in; /proc/net/dev shows the process's own.
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines]


def _isolate_network() -> None:
    """Move this process into a new network namespace with only loopback, and bring loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def _ray(*args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None) -> None:
    done = subprocess.run(
        [*(wrap or []), ray_bin(), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray {args[0]} failed: {done.stdout}\n{done.stderr}")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        #: Central repositories live here; the worker node sees an empty folder in its place.
        self.central = root / "central"
        self.node_dirs: dict[str, Path] = {}
        self.address = ADDRESS


def start_cluster(cluster: Cluster, agent_nodes: dict[str, int], env: dict[str, str] | None = None) -> None:
    """A head that takes no agents and one node per `agent_nodes` entry (name -> agents it takes), each
    with its own node folder and unable to see `cluster.central`. The caller isolates the network first
    and runs `stop_cluster` whatever happens."""
    base_env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **(env or {}),
    }
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", f"--object-store-memory={STORE_BYTES}"]
    _ray(
        "start",
        "--head",
        f"--port={PORT}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        *common,
        env={**base_env, "TUIORCH_RAY_DIR": str(cluster.root / "node-head")},
    )
    hide = f'mount -t tmpfs -o size=1m tuiorch-hidden {cluster.central} && exec "$0" "$@"'
    for name, agents in agent_nodes.items():
        cluster.node_dirs[name] = cluster.root / f"node-{name}"
        _ray(
            "start",
            f"--address={ADDRESS}",
            *common,
            f"--resources={json.dumps({AGENT_RESOURCE: agents})}",
            env={**base_env, "TUIORCH_RAY_DIR": str(cluster.node_dirs[name])},
            wrap=["unshare", "--mount", "--propagation", "private", "sh", "-c", hide],
        )
    import ray

    ray.init(address=ADDRESS, logging_level="ERROR", log_to_driver=False)
    deadline = time.monotonic() + 60
    while ray.cluster_resources().get(AGENT_RESOURCE, 0) < sum(agent_nodes.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("the Ray nodes did not join within a minute")
        time.sleep(0.2)


def stop_cluster() -> None:
    """Nothing of Ray outlives this: the driver disconnects, every Ray process on the machine is stopped."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    subprocess.run([ray_bin(), "stop", "--force"], capture_output=True, check=False)


def isolate_network() -> None:
    """Only loopback from here on (Ray listens on every interface it sees)."""
    if _interfaces() != ["lo"]:
        _isolate_network()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("Ray listens on every interface: its tests run as root, in namespaces they make")
    isolate_network()
    cluster = Cluster(tmp_path_factory.mktemp("ray"))
    cluster.central.mkdir()
    try:
        start_cluster(cluster, {"worker": 4}, env={"TUIORCH_DEMO_DELAY": "0.01"})
        yield cluster
    finally:
        stop_cluster()
