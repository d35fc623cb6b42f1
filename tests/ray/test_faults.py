"""Faults with the Ray runner on a real cluster: tuiorch killed -9 mid-run re-attaches and loses no output
and no commit; orphaned runs are ended; a node that dies takes its agent with it and the task is retried
on another node on top of the commits already fetched from the dead one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.ray.conftest import AGENT_RESOURCE, Cluster
from tests.ray.specs import Seen, demo_spec

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")

from tuiorch.runners.base import Attachment  # noqa: E402
from tuiorch.runners.ray.runner import RayRunner  # noqa: E402

DRIVER = Path(__file__).with_name("driver.py")
WRITE = "```write hello.txt\nhello from the node\n```\n"


@pytest.fixture
def central(ray_cluster: Cluster, tmp_path: Path) -> Path:
    return make_repo(ray_cluster.central / tmp_path.name)


async def _wait_for(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def _killed_driver(address: str, central: Path, task_id: str, body: str, tmp_path: Path) -> Attachment:
    """Start a run from a separate tuiorch stand-in, let it stream a while, kill it -9; its attachment."""
    body_file, saved = tmp_path / "body.md", tmp_path / "attachment.json"
    body_file.write_text(body)
    log = demo_spec(central, task_id, body).log_path
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), str(central), address, task_id, str(body_file), str(saved)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_for(lambda: saved.exists() and log.exists() and "demo output line 3 " in log.read_text())
        await asyncio.sleep(0.5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    return Attachment.from_state(json.loads(saved.read_text()))


async def test_tuiorch_killed_dash_9_reattaches_and_loses_no_output_and_no_commit(
    ray_cluster: Cluster, central: Path, tmp_path: Path
) -> None:
    body = WRITE + "lines: 40\nrate: 10\n"
    saved = await _killed_driver(ray_cluster.address, central, "1", body, tmp_path)
    assert saved.runner == "ray" and saved.ref and saved.pgid
    runner = RayRunner(central, address=ray_cluster.address, commands=[sys.executable])
    try:
        spec = demo_spec(central, "1", body)
        handle = await runner.reattach(saved, spec, Seen().hooks())
        assert handle is not None and handle.where == saved.where
        assert (await asyncio.wait_for(handle.wait(), 60)).ok
        collected = await handle.collect("leftovers", failed=False)
        assert collected.has_new_commits
        assert git(central, "show", "task-1:hello.txt") == "hello from the node"
        log = spec.log_path.read_text()
        missing = [n for n in range(1, 41) if f"demo output line {n} of 40\n" not in log]
        assert missing == []
        await handle.release()
    finally:
        await runner.close()


async def test_orphaned_runs_are_ended_and_what_they_left_reaches_their_branch(
    ray_cluster: Cluster, central: Path, tmp_path: Path
) -> None:
    # The agent writes one.txt, then hangs before writing two.txt: its work is uncommitted on the node.
    body = "```write one.txt\none\n```\n```write two.txt\ntwo\n```\nlines: 5\nhang\n"
    saved = await _killed_driver(ray_cluster.address, central, "2", body, tmp_path)
    assert saved.pgid and _alive(saved.pgid)
    runner = RayRunner(central, address=ray_cluster.address, commands=[sys.executable])
    ended = await runner.end_orphans()
    assert any(saved.ref in line for line in ended)
    await _wait_for(lambda: not _alive(saved.pgid), 15)
    assert git(central, "show", "task-2:one.txt") == "one"
    assert (
        git(central, "log", "-1", "--format=%s", "task-2")
        == "wip: work left uncommitted by an interrupted run"
    )
    assert await runner.reattach(saved, demo_spec(central, "2", ""), Seen().hooks()) is None


@pytest.fixture
async def doomed_node(ray_cluster: Cluster, tmp_path: Path):  # noqa: ANN201
    """An extra node (it takes 8 agents, so it is chosen first) whose processes the test can kill -9."""
    env = {**os.environ, "TUIORCH_RAY_DIR": str(tmp_path / "doomed"), "RAY_USAGE_STATS_ENABLED": "0"}
    node = subprocess.Popen(
        ray_cluster.node_argv({AGENT_RESOURCE: 8}, "--block"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await _wait_for(lambda: ray.cluster_resources().get("tuiorch_agent", 0) >= 12, 60)
        yield node
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()


async def test_a_dead_node_fails_its_run_and_the_retry_on_another_node_keeps_its_fetched_commits(
    ray_cluster: Cluster, central: Path, doomed_node: subprocess.Popen, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = RayRunner(central, address=ray_cluster.address, commands=[sys.executable])
    try:
        seen = Seen()
        handle = await runner.start(demo_spec(central, "3", WRITE + "linger: 120\n"), seen.hooks())
        assert (
            handle.workspace.startswith(str(Path(doomed_node.args[-1]).parent))
            or "doomed" in handle.workspace
        )
        waiting = asyncio.ensure_future(handle.wait())
        # The commit reaches the central branch while the agent still runs (it lingers after committing).
        await _wait_for(lambda: bool(git(central, "branch", "--list", "task-3")))
        fetched = git(central, "rev-parse", "task-3")
        pgid = seen.started[0].pgid
        os.killpg(doomed_node.pid, signal.SIGKILL)  # the node's raylet and workers die at once
        exit_ = await asyncio.wait_for(waiting, 90)
        assert exit_.error and "lost" in exit_.error
        await _wait_for(lambda: not _alive(pgid), 30)  # its keeper ended the agent
        await handle.release()
        retry_spec = demo_spec(central, "3", WRITE, keep_commits=True, attempt=2)
        retry = await runner.start(retry_spec, Seen().hooks())
        assert "doomed" not in retry.workspace and retry.where != handle.where
        assert (await retry.wait()).ok
        collected = await retry.collect("leftovers", failed=False)
        assert collected.has_new_commits
        assert git(central, "merge-base", "--is-ancestor", fetched, "task-3") == ""
        await retry.release()
        # Ray's word on the dead node never reaches stdout (headless tuiorch's JSON event stream).
        assert "marked dead" not in capsys.readouterr().out
    finally:
        await runner.close()


async def test_tuiorch_clean_ends_orphaned_remote_runs_and_removes_their_node_worktrees(
    ray_cluster: Cluster, central: Path, tmp_path: Path
) -> None:
    (central / "tuiorch.toml").write_text(f'[runner]\nkind = "ray"\naddress = "{ray_cluster.address}"\n')
    git(central, "add", "tuiorch.toml")
    git(central, "commit", "-qm", "ray config")
    body = "```write one.txt\none\n```\n```write two.txt\ntwo\n```\nlines: 5\nhang\n"
    saved = await _killed_driver(ray_cluster.address, central, "5", body, tmp_path)
    assert Path(saved.workspace).is_dir() and _alive(saved.pgid)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tuiorch", "clean"],
        cwd=central,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"ended the orphaned agent {saved.ref}" in done.stdout
    assert "removed the slot worktrees on the Ray node" in done.stdout
    await _wait_for(lambda: not _alive(saved.pgid), 15)
    assert not Path(saved.workspace).exists()
    # What the agent had done is on its branch (unmerged, so clean keeps the branch).
    assert git(central, "show", "task-5:one.txt") == "one"
