"""The node side of the Ray runner on a real two-node cluster: the repository reaching a node in bundles
(only what is new), warm slot worktrees, live output through a streaming generator, cancel and a dead
worker ending the agent's whole process tree, results verified before they move a branch."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.ray.conftest import AGENT_RESOURCE, Cluster

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")

from tuiorch.runners.ray import shipping  # noqa: E402
from tuiorch.runners.ray.actor import AgentActor  # noqa: E402
from tuiorch.runners.ray.nodegit import repo_key  # noqa: E402

IDENTITY = {
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}
#: An agent that prints on both streams, writes a file named by its first argument and commits it.
WRITER = (
    "import subprocess, sys, time\n"
    "name = sys.argv[1]\n"
    "print('starting', name, flush=True)\n"
    "print('a warning', file=sys.stderr, flush=True)\n"
    "open(name, 'w').write(name + '\\n')\n"
    "subprocess.run(['git', 'add', name], check=True)\n"
    "subprocess.run(['git', 'commit', '-qm', 'add ' + name], check=True)\n"
    "print('PROGRESS: 1/1 committed', flush=True)\n"
)


def actor_for(central: Path):  # noqa: ANN201
    remote = ray.remote(AgentActor).options(num_cpus=0, resources={AGENT_RESOURCE: 1})
    return remote.remote(repo_key(str(central / ".git")))


async def stream_all(actor, offset: int = 0) -> list[tuple[str, object]]:  # noqa: ANN001
    events = []
    async for ref in actor.stream.remote(offset):
        events.extend(await ref)
    return events


async def run_task(central: Path, task: str, argv: list[str], *, slot: int = 0, keep=(), scratch=()):  # noqa: ANN001, ANN201
    """Ship main, prepare the slot, run `argv`, collect and take the result; returns (actor, events, info)."""
    actor = actor_for(central)
    node = await actor.node.remote()
    start = git(central, "rev-parse", "main")
    bundle, ref = shipping.ship_bundle(central, task, start, node["tips"])
    prepared = await actor.prepare.remote(bundle, ref, start, slot, f"tuiorch/{task}", list(keep), None, {})
    pgid = await actor.start.remote(argv, IDENTITY, "the prompt", False, 30.0, None)
    events = await stream_all(actor)
    result = await actor.collect.remote("leftovers", IDENTITY, list(scratch), [start])
    info = {
        "node": node,
        "bundle": bundle,
        "prepared": prepared,
        "pgid": pgid,
        "result": result,
        "start": start,
    }
    return actor, events, info


@pytest.fixture
def central(ray_cluster: Cluster, tmp_path: Path) -> Path:
    repo = make_repo(ray_cluster.central / tmp_path.name)
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    return repo


async def test_the_node_cannot_see_the_central_repository(central: Path) -> None:
    @ray.remote(num_cpus=0, resources={AGENT_RESOURCE: 1})
    def sees(path: str) -> bool:
        return os.path.exists(path)

    assert central.exists()
    assert await sees.remote(str(central)) is False


async def test_the_node_is_another_machine_on_the_network_reached_only_over_the_veth_pair(
    ray_cluster: Cluster,
) -> None:
    if not ray_cluster.network.namespaces:
        pytest.skip("ip netns unusable here: the session runs on loopback only")

    @ray.remote(num_cpus=0, resources={AGENT_RESOURCE: 1})
    def network() -> tuple[int, list[str]]:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
        return os.stat("/proc/self/ns/net").st_ino, sorted(line.split(":")[0].strip() for line in lines)

    node_ns, interfaces = await network.remote()
    assert node_ns != os.stat("/proc/self/ns/net").st_ino  # not tuiorch's network
    assert interfaces == ["lo", "veth-node"]  # nothing of the machine's own network
    agents_on = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and AGENT_RESOURCE in n["Resources"]}
    assert agents_on == {ray_cluster.network.node_ip}


async def test_a_task_runs_on_the_node_and_its_commit_lands_on_the_branch_after_verification(
    central: Path,
) -> None:
    actor, events, info = await run_task(central, "t1", [sys.executable, "-c", WRITER, "one.txt"])
    assert info["node"]["tips"] == []  # a new node: the first bundle carries the history
    assert info["bundle"] is not None and info["prepared"]["fresh"] is True
    assert info["pgid"] > 0
    out = [line for kind, lines in events if kind == "out" for line in lines]
    err = [line for kind, lines in events if kind == "err" for line in lines]
    assert out == ["starting one.txt", "PROGRESS: 1/1 committed"]
    assert err == ["a warning"]
    assert events[-1] == (
        "exit",
        {"code": 0, "signal": None, "timed_out": False, "cancelled": False, "error": None},
    )
    tip = shipping.take_result(central, "t1", "tuiorch/t1", info["result"]["bundle"], info["start"])
    assert git(central, "rev-parse", "refs/tuiorch/incoming/t1") == tip == info["result"]["tip"]
    assert git(central, "show", "tuiorch/t1:one.txt") == "one.txt"
    assert git(central, "log", "-1", "--format=%s", "tuiorch/t1") == "add one.txt"
    ray.kill(actor)


async def test_only_new_objects_travel_to_a_node_that_has_the_history(central: Path) -> None:
    first_actor, _, first = await run_task(central, "t1", [sys.executable, "-c", WRITER, "one.txt"])
    git(central, "commit", "-q", "--allow-empty", "-m", "main moves on")
    actor, _, second = await run_task(central, "t2", [sys.executable, "-c", WRITER, "two.txt"])
    assert second["start"] in second["node"]["tips"] or second["node"]["tips"]
    assert second["bundle"] is not None
    assert len(second["bundle"]) < len(first["bundle"])
    # Only the one new commit travels: a bundle of a single empty commit on top of what the node has.
    prerequisites = [
        line for line in second["bundle"].split(b"\n\n")[0].split(b"\n") if line.startswith(b"-")
    ]
    assert prerequisites, "the second bundle is incremental"
    assert second["prepared"]["fresh"] is False  # the warm slot worktree was reused
    assert shipping.take_result(central, "t2", "tuiorch/t2", second["result"]["bundle"], second["start"])
    assert git(central, "show", "tuiorch/t2:two.txt") == "two.txt"
    for each in (first_actor, actor):
        ray.kill(each)


async def test_a_reused_slot_is_clean_except_the_kept_paths(central: Path) -> None:
    leave = "import pathlib; pathlib.Path('cache').mkdir(); pathlib.Path('cache/x').write_text('1'); pathlib.Path('junk').write_text('j')"
    actor, _, info = await run_task(central, "t1", [sys.executable, "-c", leave], scratch=["cache", "junk"])
    assert info["result"]["tip"] == info["start"]  # scratch files are never committed
    await actor.release.remote(0, False)
    look = "import os; print(sorted(p for p in os.listdir('.') if p != '.git'))"
    actor2, events, _ = await run_task(central, "t2", [sys.executable, "-c", look], keep=["cache"])
    assert ("out", ["['README.md', 'cache']"]) in events
    for each in (actor, actor2):
        ray.kill(each)


async def test_a_result_that_does_not_descend_from_its_base_is_refused(central: Path) -> None:
    actor, _, info = await run_task(central, "t1", [sys.executable, "-c", WRITER, "one.txt"])
    git(central, "commit", "-q", "--allow-empty", "-m", "elsewhere")
    other_base = git(central, "rev-parse", "main")
    with pytest.raises(shipping.ShippingError, match="does not descend"):
        shipping.take_result(central, "t1", "tuiorch/t1", info["result"]["bundle"], other_base)
    assert git(central, "branch", "--list", "tuiorch/t1") == ""  # the branch never moved
    ray.kill(actor)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


SPAWNER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '300'])\n"
    "print('child', child.pid, flush=True)\n"
    "time.sleep(300)\n"
)


async def _started_tree(central: Path, task: str):  # noqa: ANN202
    actor = actor_for(central)
    node = await actor.node.remote()
    start = git(central, "rev-parse", "main")
    bundle, ref = shipping.ship_bundle(central, task, start, node["tips"])
    await actor.prepare.remote(bundle, ref, start, 1, f"tuiorch/{task}", [], None, {})
    pgid = await actor.start.remote([sys.executable, "-c", SPAWNER], IDENTITY, "p", False, None, None)
    child = None
    async for ref in actor.stream.remote(0):
        for kind, value in await ref:
            if kind == "out" and value[0].startswith("child "):
                child = int(value[0].split()[1])
        if child:
            break
    return actor, pgid, child


async def test_cancel_ends_the_agents_whole_process_tree_on_the_node(central: Path) -> None:
    actor, pgid, child = await _started_tree(central, "t1")
    assert _alive(pgid) and _alive(child)
    began = time.monotonic()
    await actor.cancel.remote()
    events = await stream_all(actor)
    assert events[-1][0] == "exit" and events[-1][1]["cancelled"] is True
    assert time.monotonic() - began < 10
    assert not _alive(pgid) and not _alive(child)
    ray.kill(actor)


async def test_a_worker_killed_dash_9_leaves_no_agent_process_behind(central: Path) -> None:
    actor, pgid, child = await _started_tree(central, "t1")
    ray.kill(actor, no_restart=True)  # SIGKILL of the actor's worker process
    deadline = time.monotonic() + 15
    while (_alive(pgid) or _alive(child)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not _alive(pgid) and not _alive(child)
