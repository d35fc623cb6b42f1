"""RayRunner through the runner seam on a real two-node cluster, driven as the engine drives a runner:
start -> wait (live output through the hooks) -> collect (the commits verified into the task branch) ->
release; cancel, timeout, a lost worker, re-attach by name after the driver forgot the run, orphans."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.ray.conftest import Cluster

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")

from tests.ray.specs import Seen, demo_spec  # noqa: E402
from tuiorch.runners.base import StartFailed  # noqa: E402
from tuiorch.runners.ray.runner import RayRunner  # noqa: E402


@pytest.fixture
def central(ray_cluster: Cluster, tmp_path: Path) -> Path:
    return make_repo(ray_cluster.central / tmp_path.name)


@pytest.fixture
async def runner(ray_cluster: Cluster, central: Path):  # noqa: ANN201
    made = RayRunner(central, address=ray_cluster.address, commands=[sys.executable])
    yield made
    await made.close()
    for line in await made.end_orphans():
        print(line)


WRITE = "```write hello.txt\nhello from the node\n```\n"


async def test_a_task_runs_on_the_worker_node_and_its_commits_reach_the_task_branch(
    ray_cluster: Cluster, runner: RayRunner, central: Path
) -> None:
    seen = Seen()
    handle = await runner.start(demo_spec(central, "1", WRITE), seen.hooks())
    assert "/" in handle.where and handle.workspace.startswith(str(ray_cluster.node_dirs["worker"]))
    exit_ = await handle.wait()
    assert exit_.ok, exit_
    assert seen.started and seen.started[0].runner == "ray" and seen.started[0].pgid
    assert any("PROGRESS" in line for line in seen.lines)
    collected = await handle.collect("leftovers", failed=False)
    assert collected.has_new_commits
    assert (
        collected.tip
        == git(central, "rev-parse", "task-1")
        == git(central, "rev-parse", "refs/tuiorch/incoming/1")
    )
    assert git(central, "show", "task-1:hello.txt") == "hello from the node"
    await handle.release()
    log = Path(demo_spec(central, "1", WRITE).log_path).read_text()
    assert "PROGRESS" in log


async def test_uncommitted_work_is_committed_on_the_node_and_fetched(
    runner: RayRunner, central: Path
) -> None:
    handle = await runner.start(demo_spec(central, "2", WRITE + "no-commit\n"), Seen().hooks())
    assert (await handle.wait()).ok
    collected = await handle.collect("feat: leftovers", failed=False)
    assert collected.has_new_commits
    assert git(central, "log", "-1", "--format=%s", "task-2") == "feat: leftovers"
    await handle.release()


async def test_nothing_changed_is_no_new_commits(runner: RayRunner, central: Path) -> None:
    handle = await runner.start(demo_spec(central, "3", "nothing\n"), Seen().hooks())
    assert (await handle.wait()).ok
    collected = await handle.collect("x", failed=False)
    assert not collected.has_new_commits
    await handle.release()


async def test_the_timeout_is_enforced_on_the_node(runner: RayRunner, central: Path) -> None:
    handle = await runner.start(demo_spec(central, "4", "hang\n", timeout=2.0), Seen().hooks())
    exit_ = await asyncio.wait_for(handle.wait(), 30)
    assert exit_.timed_out and not exit_.ok
    await handle.release()


async def test_cancel_ends_a_running_agent(runner: RayRunner, central: Path) -> None:
    seen = Seen()
    handle = await runner.start(demo_spec(central, "5", "hang\n"), seen.hooks())
    waiting = asyncio.ensure_future(handle.wait())
    while not seen.started:
        await asyncio.sleep(0.05)
    handle.cancel()
    exit_ = await asyncio.wait_for(waiting, 30)
    assert exit_.cancelled
    await handle.release()


async def test_commits_arrive_while_the_agent_still_runs(runner: RayRunner, central: Path) -> None:
    handle = await runner.start(demo_spec(central, "6", WRITE + "linger: 20\n"), Seen().hooks())
    waiting = asyncio.ensure_future(handle.wait())
    for _ in range(300):
        if git(central, "branch", "--list", "task-6"):
            break
        await asyncio.sleep(0.1)
    assert git(central, "show", "task-6:hello.txt") == "hello from the node"
    assert not waiting.done()
    handle.cancel()
    await asyncio.wait_for(waiting, 30)
    await handle.release()


async def test_a_node_without_the_agent_cli_is_reported_and_skipped(
    ray_cluster: Cluster, central: Path
) -> None:
    runner = RayRunner(central, address=ray_cluster.address, commands=["no-such-agent-cli"])
    notices: list[str] = []
    hooks = Seen().hooks()
    hooks.on_notice = notices.append
    with pytest.raises(StartFailed, match="no Ray node can take an agent now.*lacks no-such-agent-cli"):
        await runner.start(demo_spec(central, "8", WRITE), hooks)
    assert any("lacks no-such-agent-cli: no agents go there" in notice for notice in notices)
    await runner.close()


def conflicting_branch(central: Path) -> tuple[str, str]:
    """task-9 and main both changed a.txt since they parted; (branch tip, main tip)."""
    git(central, "checkout", "-q", "-b", "task-9")
    (central / "a.txt").write_text("ours\n")
    git(central, "commit", "-qam", "ours")
    git(central, "checkout", "-q", "main")
    (central / "a.txt").write_text("theirs\n")
    git(central, "commit", "-qam", "theirs")
    return git(central, "rev-parse", "task-9"), git(central, "rev-parse", "main")


def resolver_spec(central: Path, script: str):  # noqa: ANN201
    from dataclasses import replace

    from tuiorch.runners.base import AgentCommand

    spec = demo_spec(central, "9", "", keep_commits=True)
    return replace(
        spec,
        kind="resolve",
        merge_message="Merge main into task-9",
        command=lambda workspace: AgentCommand(argv=(sys.executable, "-c", script), prompt="resolve"),
    )


@pytest.fixture
def central_with_conflict(ray_cluster: Cluster, tmp_path: Path) -> Path:
    return make_repo(ray_cluster.central / tmp_path.name, {"a.txt": "base\n"})


async def test_a_resolver_gets_the_base_merged_in_with_markers_and_its_resolution_comes_back_as_the_merge(
    runner: RayRunner, central_with_conflict: Path
) -> None:
    central = central_with_conflict
    ours, theirs = conflicting_branch(central)
    script = "import pathlib; assert '<<<<<<<' in pathlib.Path('a.txt').read_text(); pathlib.Path('a.txt').write_text('both\\n')"
    handle = await runner.start(resolver_spec(central, script), Seen().hooks())
    assert handle.conflicted == ("a.txt",)
    assert (await handle.wait()).ok
    collected = await handle.collect("x", failed=False)
    assert collected.markers == ()
    assert git(central, "rev-parse", "task-9^1", "task-9^2").split() == [ours, theirs]
    assert git(central, "show", "task-9:a.txt") == "both"
    assert git(central, "log", "-1", "--format=%s", "task-9") == "Merge main into task-9"
    await handle.release()


async def test_a_resolution_that_leaves_markers_is_never_committed(
    runner: RayRunner, central_with_conflict: Path
) -> None:
    central = central_with_conflict
    ours, _ = conflicting_branch(central)
    handle = await runner.start(resolver_spec(central, "pass"), Seen().hooks())
    assert (await handle.wait()).ok
    collected = await handle.collect("x", failed=False)
    assert collected.markers == ("a.txt",)
    assert git(central, "rev-parse", "task-9") == ours
    await handle.release()


async def test_an_unreachable_cluster_is_a_start_failure_naming_it(tmp_path: Path) -> None:
    # A new process: this one is connected to the test cluster already.
    script = (
        "import asyncio, sys\n"
        "from tuiorch.runners.ray.runner import RayRunner\n"
        "from tuiorch.runners.base import StartFailed\n"
        "try:\n"
        "    asyncio.run(RayRunner(sys.argv[1], address='127.0.0.1:9').connect())\n"
        "except StartFailed as exc:\n"
        "    print(exc.reason)\n"
    )
    repo = make_repo(tmp_path / "repo")
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo)], capture_output=True, text=True, timeout=60
    )
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in done.stdout, done.stderr


def test_the_ray_throughput_bench_runs(ray_cluster: Cluster) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "ray_throughput.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--address", ray_cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "extra per task on ray" in done.stdout


async def test_work_that_cannot_be_committed_is_kept_out_of_the_pool_on_the_node(
    runner: RayRunner, central: Path
) -> None:
    from dataclasses import replace

    from tuiorch.gitops import UncommittedWork
    from tuiorch.runners.base import AgentCommand

    leave = (
        "import pathlib, subprocess\n"
        "subprocess.run(['git', 'checkout', '-q', '--detach'], check=True)\n"
        "pathlib.Path('precious.txt').write_text('not committed')\n"
    )
    spec = replace(
        demo_spec(central, "10", ""),
        command=lambda workspace: AgentCommand(argv=(sys.executable, "-c", leave), prompt="p"),
    )
    handle = await runner.start(spec, Seen().hooks())
    slot_path = handle.workspace
    assert (await handle.wait()).ok
    with pytest.raises(UncommittedWork) as caught:
        await handle.collect("x", failed=False)
    kept = Path(caught.value.worktree)
    assert (kept / "precious.txt").read_text() == "not committed"
    assert str(kept) in str(caught.value) and handle.where in str(caught.value)
    await handle.release()
    # The slot is made anew for the next task; the kept work is untouched.
    again = await runner.start(demo_spec(central, "11", WRITE), Seen().hooks())
    assert again.workspace == slot_path
    assert (await again.wait()).ok
    await again.collect("x", failed=False)
    await again.release()
    assert (kept / "precious.txt").read_text() == "not committed"


async def test_slots_setup_runs_once_in_a_fresh_node_worktree_and_a_failure_is_a_start_failure(
    runner: RayRunner, central: Path
) -> None:
    setup = (sys.executable, "-c", "import pathlib; pathlib.Path('.ready').write_text('x'); print('set up')")
    first = await runner.start(demo_spec(central, "12", WRITE, slot=3, setup=setup), Seen().hooks())
    assert (Path(first.workspace) / ".ready").exists()
    assert "== setup on" in Path(demo_spec(central, "12", "").log_path).read_text()
    assert (await first.wait()).ok
    await first.collect("x", failed=False)
    await first.release()
    # Warm: the same slot's next task does not set up again (and .ready, untracked, is cleaned).
    second = await runner.start(demo_spec(central, "13", WRITE, slot=3, setup=setup), Seen().hooks())
    assert not (Path(second.workspace) / ".ready").exists()
    assert (await second.wait()).ok
    await second.release()
    failing = (sys.executable, "-c", "raise SystemExit(3)")
    with pytest.raises(StartFailed, match=r"\[slots\] setup failed on .* \(exit 3\)"):
        await runner.start(demo_spec(central, "14", WRITE, slot=4, setup=failing), Seen().hooks())
    assert not Path(first.workspace).with_name("4").exists()  # removed: set up again next time
