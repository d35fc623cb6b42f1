"""`tuiorch run` with [runner] kind = "ray": a queue of demo-agent tasks runs on the worker node of a real
cluster (which cannot see the repository) and reaches the same end state as locally: every task merged
into main once, no task branch or worktree left, no actor of the run left on the cluster."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.ray.conftest import Cluster

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
    done = subprocess.run(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    events = []
    for line in done.stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return done.returncode, events, done.stderr


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
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
