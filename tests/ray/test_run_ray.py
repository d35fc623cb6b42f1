"""`tuiorch run` with [runner] kind = "ray": a queue of demo-agent tasks runs on the worker node of a real
cluster (which cannot see the repository) and reaches the same end state as locally: every task merged
into main once, no task branch or worktree left, no actor of the run left on the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import test_faults as faults
from tests.conftest import git, make_repo
from tests.ray.conftest import Cluster
from tuiorch import events as ev
from tuiorch.config import load_config
from tuiorch.model.status import TaskStatus
from tuiorch.orchestrator import Orchestrator
from tuiorch.state import load_state, log_dir
from tuiorch.tasks import load_tasks

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")

TASKS = """\
    ## Task 1: Add alpha
    type: feat

    ```write alpha.txt
    alpha
    ```

    ## Task 2: Add beta
    type: feat

    ```write beta.txt
    beta
    ```

    ## Task 3: Add gamma
    depends: 1

    ```write gamma.txt
    gamma
    ```

    ## Task 4: Leave it uncommitted
    no-commit

    ```write delta.txt
    delta
    ```
"""


def project(cluster: Cluster, repo: Path, workers: int = 2, tasks: str = TASKS, extra: str = "") -> None:
    (repo / "tuiorch.toml").write_text(
        f'workers = {workers}\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n\n'
        f'[runner]\nkind = "ray"\naddress = "{cluster.address}"\n{extra}'
    )
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")


def run_headless(repo: Path, *args: str) -> tuple[int, list[dict], str]:
    """A whole headless run against the cluster: slower than a local one (actors start on the node)."""
    return faults.run_headless(repo, *args, timeout=300)


def merged_tasks(repo: Path) -> list[str]:
    log = git(repo, "log", "--first-parent", "--merges", "--format=%B%x00", "main")
    return sorted(
        line.removeprefix("Refs: TASKS.md#task-").strip()
        for message in log.split("\x00")
        for line in message.splitlines()
        if line.startswith("Refs: TASKS.md#task-")
    )


def test_a_queue_runs_on_the_cluster_and_lands_in_main(ray_cluster: Cluster, tmp_path: Path) -> None:
    repo = make_repo(ray_cluster.central / tmp_path.name)
    project(ray_cluster, repo)
    code, events, stderr = run_headless(repo)
    assert code == 0, stderr
    started = [e for e in events if e["event"] == "task_started"]
    assert len(started) == 4
    # Every agent ran on the worker node, in a slot worktree of its cache repository.
    assert all(e["worktree"].startswith(str(ray_cluster.node_dirs["worker"])) for e in started), started
    assert merged_tasks(repo) == ["1", "2", "3", "4"]
    for name in ("alpha", "beta", "gamma", "delta"):
        assert git(repo, "show", f"main:{name}.txt") == name
    assert [
        b for b in git(repo, "branch", "--format=%(refname:short)").split() if b.startswith("task-")
    ] == []
    leftovers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "tuiorch"]
    assert leftovers == []
    status = subprocess.run(
        [sys.executable, "-m", "tuiorch", "status"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr


CONFLICTING = """\
    ## Task 1: One says one
    touches: nothing-in-common-1

    ```write shared.txt
    one
    ```

    ## Task 2: Two says two
    touches: nothing-in-common-2

    ```write shared.txt
    two
    ```
"""


def test_a_conflict_is_resolved_by_a_resolver_agent_on_the_cluster(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(ray_cluster.central / tmp_path.name)
    project(ray_cluster, repo, tasks=CONFLICTING, extra='\n[merge]\non_conflict = "agent"\n')
    code, events, stderr = run_headless(repo)
    assert code == 0, stderr
    assert [e["task"] for e in events if e["event"] == "conflict"], (
        "the second task met the first one's change"
    )
    assert merged_tasks(repo) == ["1", "2"]
    shared = git(repo, "show", "main:shared.txt").splitlines()
    assert sorted(shared) == ["one", "two"]


def test_tuiorch_killed_dash_9_mid_run_then_run_again_merges_everything_once(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(ray_cluster.central / tmp_path.name)
    slow = TASKS.replace("    ```\n", "    ```\n\n    sleep: 4\n")
    project(ray_cluster, repo, tasks=slow)
    proc = faults.start_headless(repo)
    assert proc.stdout is not None
    started = 0
    for line in proc.stdout:
        with contextlib.suppress(json.JSONDecodeError):
            started += json.loads(line).get("event") == "task_started"
        if started >= 2:
            break
    proc.kill()
    proc.wait()
    proc.stdout.close()
    # The dead run's state names the node each of its agents was running on.
    status = subprocess.run(
        [sys.executable, "-m", "tuiorch", "status"], cwd=repo, capture_output=True, text=True, check=False
    )
    running = [line for line in status.stdout.splitlines() if " running " in line]
    assert running and all(" on " in line for line in running), status.stdout
    code, _, stderr = run_headless(repo)
    assert code == 0, stderr
    assert merged_tasks(repo) == ["1", "2", "3", "4"]
    for name in ("alpha", "beta", "gamma", "delta"):
        assert git(repo, "show", f"main:{name}.txt") == name
    leftovers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "tuiorch"]
    assert leftovers == []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _log_text(log: Path) -> str:
    return log.read_text() if log.exists() else ""


LINGERING = """\
    ## Task 1: Add alpha slowly
    type: feat

    ```write alpha.txt
    alpha
    ```

    lines: 30
    rate: 5
    linger: 2
"""


def test_tuiorch_killed_dash_9_mid_run_reattaches_to_the_agent_still_running_on_the_node(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(ray_cluster.central / tmp_path.name)
    project(ray_cluster, repo, workers=1, tasks=LINGERING)
    log = log_dir(repo / ".git") / "1.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: "demo output line 5 of 30\n" in _log_text(log))
    finally:
        proc.kill()
        proc.wait()
    saved = (load_state(repo / ".git") or {})["tasks"]["1"]
    assert saved["runner"] == "ray" and saved["ref"] and saved["pgid"], saved
    pgid = int(saved["pgid"])
    # tuiorch is dead; its agent goes on writing on the worker node.
    assert _alive(pgid)
    time.sleep(1.0)
    assert _alive(pgid)
    code, events, stderr = run_headless(repo)
    assert code == 0, stderr
    notices = [e["message"] for e in events if e["event"] == "notice"]
    assert any("re-attached" in n and saved["where"] in n for n in notices), notices
    assert not any("ended" in n for n in notices), notices  # the agent was taken up, not ended
    started = [e for e in events if e["event"] == "task_started"]
    assert [(e["task"], e["attempt"]) for e in started] == [("1", 1)]
    assert started[0]["worktree"] == saved["worktree"]
    # One agent ran, from start to end, and its output before and after the kill is all in the log.
    text = log.read_text()
    assert text.count("demo agent: task 1: Add alpha slowly") == 1, text
    missing = [n for n in range(1, 31) if f"demo output line {n} of 30\n" not in text]
    assert missing == [], text
    assert "reviewing the work for 2 s" in text
    assert merged_tasks(repo) == ["1"]  # merged exactly once
    assert git(repo, "show", "main:alpha.txt") == "alpha"
    _wait_for(lambda: not _alive(pgid), 15)
    leftovers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "tuiorch"]
    assert leftovers == []


#: A custom agent that leaves work uncommitted, starts a child in its process group, and waits.
SPAWNING_AGENT = """\
import pathlib, subprocess, time
pathlib.Path("work.txt").write_text("half done\\n")
child = subprocess.Popen(["sleep", "300"])
print("child", child.pid, flush=True)
time.sleep(300)
"""


async def test_cancel_ends_the_agents_whole_tree_on_the_node_and_keeps_its_work(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(ray_cluster.central / tmp_path.name, {"README.md": "# demo\n", "agent.py": SPAWNING_AGENT})
    # Unconfined: the child's pid it prints must be the node's (a sandbox has a pid namespace of its own).
    (repo / "tuiorch.toml").write_text(
        f'workers = 1\n\n[agent]\npreset = "custom"\ncommand = ["{sys.executable}", "agent.py"]\nconfine = "off"\n'
        f'timeout = "120s"\nstuck_after = "0"\n\n[runner]\nkind = "ray"\naddress = "{ray_cluster.address}"\n'
    )
    (repo / "TASKS.md").write_text("## Task 1: Spawn and wait\n\nStart a child and wait.\n")
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")
    events: list[ev.Event] = []
    orchestrator = Orchestrator(repo, load_config(repo), load_tasks(repo / "TASKS.md"), events.append)
    run = asyncio.create_task(orchestrator.run())
    rec = orchestrator.records["1"]
    deadline = time.monotonic() + 90
    while not any(line.startswith("child ") for line in rec.tail):
        assert time.monotonic() < deadline and not run.done(), "the agent never started its child"
        await asyncio.sleep(0.1)
    child = int(next(line for line in rec.tail if line.startswith("child ")).split()[1])
    pgid = rec.pgid
    assert pgid and rec.where and rec.where != "local"
    assert _alive(pgid) and _alive(child)  # on the worker node (same machine, its own mounts)
    orchestrator.cancel("1")
    await asyncio.wait_for(run, 60)
    assert rec.status is TaskStatus.CANCELLED
    assert [e.task for e in events if isinstance(e, ev.TaskCancelled)] == ["1"]
    # The agent's whole tree on the node is gone (a signalled child may take a moment to go).
    _wait_for(lambda: not _alive(pgid) and not _alive(child), 10)
    # What it left uncommitted is on its branch, as locally; main is untouched.
    assert git(repo, "show", "task-1:work.txt") == "half done"
    assert git(repo, "log", "-1", "--format=%s", "task-1") == "wip: Spawn and wait (attempt 1 stopped)"
    assert git(repo, "ls-tree", "--name-only", "main").split() == ["README.md", "TASKS.md", "agent.py", "tuiorch.toml"]
    leftovers = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "tuiorch"]
    assert leftovers == []
