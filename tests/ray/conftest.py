"""A real two-node Ray cluster for the Ray runner's tests, started once per session, always stopped.

Ray listens on every interface whatever address it is given, so the cluster runs only inside network
namespaces the session makes: a head namespace (the head node, which takes no agents, and this test
process with every tuiorch it starts, as tuiorch's machine) and a node namespace (the worker nodes),
joined by a veth pair on a private /24 and nothing else; nothing outside the machine, or on it, can reach
the cluster. Both namespaces are deleted at the end. The worker nodes also run in a mount namespace where
the folder holding the central repositories is an empty tmpfs: code and commits reach them only through
Ray, as they would on another machine. Agents are pinned to the worker nodes by their `tuiorch_agent`
resource. Where `ip netns` cannot be used, the session falls back to one namespace of its own with only
loopback, every node on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

PORT = 6390
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


@dataclass(frozen=True)
class Network:
    """Where the cluster's nodes live."""

    head_ip: str
    node_ip: str
    #: Runs a command in the worker nodes' network namespace (empty: this process's).
    node_prefix: tuple[str, ...] = ()
    #: The named network namespaces made for the session, deleted at its end.
    namespaces: tuple[str, ...] = ()
    #: The network namespaces the session made (inode numbers): every process in them is the session's.
    made: frozenset[int] = frozenset()


LOOPBACK = Network("127.0.0.1", "127.0.0.1")
#: A private /24 that exists only inside the session's namespaces.
HEAD_IP, NODE_IP = "10.231.0.1", "10.231.0.2"
NAMESPACE_NAME = re.compile(r"^tuiorch-ray-(\d+)-(head|node)$")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _enter(namespace: str) -> None:
    """Move this process into the named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
    finally:
        os.close(fd)


def _remove_stale_namespaces() -> None:
    """Namespaces an earlier session left when it was killed (its process is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAMESPACE_NAME.match(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def _two_namespaces() -> Network:
    tag = os.getpid()
    head, node = f"tuiorch-ray-{tag}-head", f"tuiorch-ray-{tag}-node"
    network = Network(HEAD_IP, NODE_IP, ("ip", "netns", "exec", node), (head, node))
    try:
        _ip("netns", "add", head)
        _ip("netns", "add", node)
        # Made inside the namespaces: the pair never appears on the machine's own network.
        _ip("-n", head, "link", "add", "veth-head", "type", "veth", "peer", "name", "veth-node", "netns", node)
        for name, veth, address in ((head, "veth-head", HEAD_IP), (node, "veth-node", NODE_IP)):
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", veth)
            _ip("-n", name, "link", "set", veth, "up")
            _ip("-n", name, "link", "set", "lo", "up")
        _enter(head)
    except OSError:
        delete_network(network)
        raise
    made = frozenset(_net_namespace(path) for path in ("/proc/self/ns/net", f"/run/netns/{node}"))
    return replace(network, made=made - {None})


def make_network() -> Network:
    """The session's namespaces, this process moved into the head's; only loopback where `ip netns` fails."""
    if shutil.which("ip") is not None:
        _remove_stale_namespaces()
        try:
            return _two_namespaces()
        except OSError as exc:
            print(f"ip netns unusable ({exc}); the Ray cluster runs on loopback only", file=sys.stderr)
    before = _net_namespace("/proc/self/ns/net")
    isolate_network()
    own = _net_namespace("/proc/self/ns/net")
    return replace(LOOPBACK, made=frozenset({own})) if own not in (before, None) else LOOPBACK


def delete_network(network: Network) -> None:
    for name in network.namespaces:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


class Cluster:
    def __init__(self, root: Path, network: Network = LOOPBACK) -> None:
        self.root = root
        #: Central repositories live here; the worker node sees an empty folder in its place.
        self.central = root / "central"
        self.node_dirs: dict[str, Path] = {}
        self.network = network
        self.address = f"{network.head_ip}:{PORT}"

    def node_argv(self, resources: dict[str, float], *extra: str) -> list[str]:
        """`ray start` for a worker node: in the nodes' namespace, unable to see `central`."""
        hide = f'mount -t tmpfs -o size=1m tuiorch-hidden {self.central} && exec "$0" "$@"'
        return [
            *self.network.node_prefix,
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", hide),
            ray_bin(),
            "start",
            f"--address={self.address}",
            f"--node-ip-address={self.network.node_ip}",
            "--num-cpus=1",
            f"--object-store-memory={STORE_BYTES}",
            f"--resources={json.dumps(resources)}",
            *extra,
        ]


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
    _ray(
        "start",
        "--head",
        f"--port={PORT}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--node-ip-address={cluster.network.head_ip}",
        "--num-cpus=1",
        f"--object-store-memory={STORE_BYTES}",
        env={**base_env, "TUIORCH_RAY_DIR": str(cluster.root / "node-head")},
    )
    for name, agents in agent_nodes.items():
        cluster.node_dirs[name] = cluster.root / f"node-{name}"
        node = {**base_env, "TUIORCH_RAY_DIR": str(cluster.node_dirs[name])}
        done = subprocess.run(
            cluster.node_argv({AGENT_RESOURCE: agents}), env=node, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start of node {name} failed: {done.stdout}\n{done.stderr}")
    import ray

    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    deadline = time.monotonic() + 60
    while ray.cluster_resources().get(AGENT_RESOURCE, 0) < sum(agent_nodes.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("the Ray nodes did not join within a minute")
        time.sleep(0.2)


def _net_namespace(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _session_processes(network: Network) -> list[int] | None:
    """Every other process in the network namespaces the session made (only the session started any
    there); None when it made none (nothing tells its processes apart from the machine's)."""
    if not network.made:
        return None
    me = os.getpid()
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and int(pid) != me and _net_namespace(f"/proc/{pid}/ns/net") in network.made
    ]


def stop_cluster(network: Network = LOOPBACK) -> None:
    """Nothing of the session's cluster outlives this: the driver disconnects, then every process left in
    the session's namespaces (nodes, workers, agents) gets TERM, and KILL after 5 s. Ray's own
    `ray stop` ends every Ray process on the machine, another session's cluster too: it is used only when
    the session's processes cannot be told apart."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    pids = _session_processes(network)
    if pids is None:
        subprocess.run([ray_bin(), "stop", "--force"], capture_output=True, check=False)
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while (pids := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def isolate_network() -> None:
    """Only loopback from here on (Ray listens on every interface it sees)."""
    if _interfaces() != ["lo"]:
        _isolate_network()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("Ray listens on every interface: its tests run as root, in namespaces they make")
    network = make_network()
    cluster = Cluster(tmp_path_factory.mktemp("ray"), network)
    cluster.central.mkdir()
    try:
        start_cluster(cluster, {"worker": 4}, env={"TUIORCH_DEMO_DELAY": "0.01"})
        yield cluster
    finally:
        stop_cluster(network)
        delete_network(network)
