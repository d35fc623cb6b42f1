"""`[agent] confine` on a Ray node: the agent runs in bubblewrap on the worker node, writes only its slot
worktree and its own private repository; its legitimate commit still lands in main."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tests.ray.conftest import Cluster
from tests.ray.test_run_ray import run_headless
from tuiorch.confine.bwrap import bubblewrap_problem
from tuiorch.runners.ray.nodegit import repo_key

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tuiorch[ray]')")
pytestmark = pytest.mark.skipif(bubblewrap_problem() is not None, reason=f"{bubblewrap_problem()}")

#: Run in the slot worktree on the worker node: every escape it tries is printed with how it went.
HOSTILE = textwrap.dedent(
    """\
    import os, subprocess
    from pathlib import Path

    worktree = Path.cwd()
    slots = worktree.parent
    node = slots.parent  # this repository's folder in the node dir
    cache = node / "cache.git"
    branch = subprocess.run(["git", "symbolic-ref", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    identity = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x",
                "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}

    def write(what, path):
        try:
            Path(path).write_text("escaped\\n")
            print(f"ESCAPE {what}: exit 0", flush=True)
        except OSError as exc:
            print(f"ESCAPE {what}: {exc}", flush=True)

    def run(what, *argv):
        done = subprocess.run(argv, capture_output=True, text=True, env=identity)
        print(f"ESCAPE {what}: exit {done.returncode} {done.stderr.strip()[-160:]!r}", flush=True)

    write("the cache repository", cache / "escaped.txt")
    write("the cache's refs", cache / "refs" / "heads" / "escaped")
    write("another slot's worktree", slots / "9" / "file.txt")
    write("work kept aside on the node", node / "kept" / "1-a" / "file.txt")
    write("the node dir", node / "escaped.txt")
    write("the node dir's root", node.parent / "escaped.txt")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    run("move main in the cache", "git", "--git-dir", str(cache), "update-ref", "refs/heads/main", head)
    run("move its branch in the cache", "git", "--git-dir", str(cache), "update-ref", f"refs/heads/{branch}", head + "~1")
    Path("feature.txt").write_text("legitimate work\\n")
    subprocess.run(["git", "add", "feature.txt"], check=True, env=identity)
    subprocess.run(["git", "commit", "-q", "-m", "feat: legitimate work"], check=True, env=identity)
    # Its own repository takes this; the cache does not.
    subprocess.run(["git", "update-ref", "refs/heads/main", "HEAD"], check=True, env=identity)
    print("committed", flush=True)
    """
)


def _hostile_project(cluster: Cluster, tmp_path: Path, agent: str, confine: str, task: str) -> Path:
    """A repository the node cannot see whose one task runs `agent` (a script of its own) on the node."""
    repo = make_repo(cluster.central / tmp_path.name, {"README.md": "# mine\n", "agent.py": agent})
    (repo / "tuiorch.toml").write_text(
        f'workers = 1\n\n[agent]\npreset = "custom"\ncommand = ["{sys.executable}", "agent.py"]\n'
        f'confine = "{confine}"\ntimeout = "120s"\nstuck_after = "0"\nretries = 0\n\n'
        f'[runner]\nkind = "ray"\naddress = "{cluster.address}"\n'
    )
    (repo / "TASKS.md").write_text(task)
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")
    return repo


def test_a_confined_agent_on_a_node_writes_only_its_worktree_and_its_commit_lands(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = _hostile_project(
        ray_cluster, tmp_path, HOSTILE, "on", "## Task 1: Hostile\n\nTry to escape, then do the work.\n"
    )
    node = ray_cluster.node_dirs["worker"] / repo_key(str(repo / ".git"))
    # Another agent's slot (the run's end removes the node's slots) and work kept aside (it stays).
    for folder in (node / "slots" / "9", node / "kept" / "1-a"):
        folder.mkdir(parents=True)
        (folder / "file.txt").write_text("another agent's work\n")
    main = git(repo, "rev-parse", "main")

    code, events, stderr = run_headless(repo)

    assert code == 0, stderr + json.dumps(events)[:3000]
    started = [e for e in events if e["event"] == "task_started"]
    assert started and all(e["confined"] for e in started), started
    assert all(e["worktree"].startswith(str(node)) for e in started), started
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    escapes = [line for line in log.splitlines() if line.startswith("ESCAPE")]
    assert len(escapes) == 8 and "committed" in log, log
    for line in escapes:
        assert "exit 0" not in line, line
        assert "Read-only file system" in line, line
    # The run says what the sandbox refused, naming paths the agent tried to write.
    refused = [e["message"] for e in events if e["event"] == "notice" and "sandbox refused" in e["message"]]
    assert len(refused) == 1 and str(node / "cache.git") in refused[0], refused
    # Nothing outside the worktree changed on the node; the cache's refs are tuiorch's alone.
    assert (node / "kept" / "1-a" / "file.txt").read_text() == "another agent's work\n"
    for escaped in (node / "cache.git" / "escaped.txt", node / "escaped.txt", node.parent / "escaped.txt"):
        assert not escaped.exists(), escaped
    cache_refs = git(node / "cache.git", "for-each-ref", "--format=%(refname)").split()
    assert "refs/heads/main" not in cache_refs and "refs/heads/escaped" not in cache_refs, cache_refs
    # Its legitimate commit is merged into main, once.
    assert git(repo, "rev-parse", "main^1") == main
    assert git(repo, "show", "main:feature.txt") == "legitimate work"
    assert "feat: legitimate work" in git(repo, "log", "--format=%s", "main")


REWRITER = textwrap.dedent(
    """\
    import subprocess
    from pathlib import Path
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}
    branch = subprocess.run(["git", "symbolic-ref", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # A branch whose history no longer holds where the attempt started.
    subprocess.run(["git", "checkout", "-q", "--orphan", "fresh"], check=True)
    Path("feature.txt").write_text("rewritten\\n")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-q", "-m", "rewritten history"], check=True)
    subprocess.run(["git", "branch", "-f", branch, "fresh"], check=True)
    subprocess.run(["git", "checkout", "-q", branch], check=True)
    """
)


def test_a_confined_agent_on_a_node_that_rewrites_its_branch_is_refused(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    repo = _hostile_project(ray_cluster, tmp_path, REWRITER, "auto", "## Task 1: Rewrite\n\nRewrite the branch.\n")
    main = git(repo, "rev-parse", "main")
    code, events, stderr = run_headless(repo)
    assert code == 1, stderr
    assert all(e["confined"] for e in events if e["event"] == "task_started")
    failed = [e for e in events if e["event"] == "task_failed"]
    assert failed and "rewrote its branch" in failed[0]["reason"], failed
    assert git(repo, "rev-parse", "main") == main
    assert "rewritten history" not in git(repo, "log", "--all", "--format=%s")
