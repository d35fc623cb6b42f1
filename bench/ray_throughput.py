"""Ray runner throughput: the throughput bench's tasks on a two-node Ray cluster against the local runner.

    sudo python bench/ray_throughput.py                 # 16 tasks, 16 workers, 200 files, both arms
    python bench/ray_throughput.py --quick --address HOST:PORT   # smoke, on a cluster already running

Root only: the bench makes two network namespaces joined by a veth pair (Ray listens on every interface)
and moves into the head's, starts a head that takes no agents and, in the other, two nodes that take
`--workers / 2` agents each (the nodes cannot see the repositories: commits reach them only through Ray),
and always stops every Ray process and deletes the namespaces at the end.
Both arms run `tuiorch run --headless --json` on identical fresh repositories with the bench agent; the
Ray arm's tuiorch.toml adds `[runner] kind = "ray"`. Reported: wall time of each arm and the extra time per
task the cluster costs ((ray - local) * workers / tasks: what one agent slot waits longer per task).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common
import throughput
from common import BenchError, format_seconds, generate_repo, write_agent

sys.path.insert(0, str(common.PROJECT_ROOT))
from tests.ray.conftest import LOOPBACK, Cluster, delete_network, make_network, start_cluster, stop_cluster  # noqa: E402

QUICK = (4, 4, 50)


def run_arm(root: Path, name: str, args: argparse.Namespace, agent: Path, runner: str) -> float:
    repo = root / name
    generate_repo(repo, args.files)
    original = throughput.tuiorch_toml
    throughput.tuiorch_toml = lambda workers, agent, **options: original(workers, agent, **options) + runner
    try:
        result = throughput.run_tuiorch(repo, args.tasks, args.workers, agent)
    finally:
        throughput.tuiorch_toml = original
    return result.wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--address", help="use this running cluster (its nodes' tuiorch_agent resources)")
    parser.add_argument("--quick", action="store_true", help="4 tasks, 4 workers, 50 files")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.workers, args.files = QUICK
    network = LOOPBACK if args.address else make_network()
    with tempfile.TemporaryDirectory(prefix="tuiorch-ray-bench-") as tmp:
        cluster = Cluster(Path(tmp), network)
        cluster.central.mkdir()
        agent = write_agent(Path(tmp))
        local = run_arm(cluster.central, "local", args, agent, "")
        began = time.perf_counter()
        per_node = max(1, args.workers // 2)
        try:
            if not args.address:
                start_cluster(cluster, {"a": per_node, "b": args.workers - per_node})
            up = time.perf_counter() - began
            ray_runner = f'\n[runner]\nkind = "ray"\naddress = "{args.address or cluster.address}"\n'
            on_ray = run_arm(cluster.central, "ray", args, agent, ray_runner)
        finally:
            if not args.address:
                stop_cluster(network)
                delete_network(network)
    extra = (on_ray - local) * args.workers / args.tasks
    print(f"{args.tasks} tasks, {args.workers} workers, {args.files} files")
    print(f"  local runner          {format_seconds(local)}")
    print(
        f"  ray runner (2 nodes)  {format_seconds(on_ray)}   (cluster start {format_seconds(up)}, not counted)"
    )
    print(f"  extra per task on ray {format_seconds(extra)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(1)
