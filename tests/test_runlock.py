"""One orchestrator per repository; a killed one's git locks do not block the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import git
from tests.test_headless import run, write_project


def test_a_second_tuiorch_on_the_same_repo_is_refused(repo: Path) -> None:
    write_project(repo, "## Task 1: Slow\nsleep: 3\n```write a.txt\na\n```\n")
    first = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None
        for line in first.stdout:
            if json.loads(line)["event"] == "task_started":
                break
        second = subprocess.run(
            [sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=repo, capture_output=True, text=True
        )
        assert second.returncode == 2
        assert "another tuiorch" in second.stderr and str(first.pid) in second.stderr
        assert "Traceback" not in second.stderr
        first.stdout.read()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert git(repo, "show", "main:a.txt") == "a"


def test_locks_left_by_a_killed_run_are_cleared_on_resume(repo: Path) -> None:
    write_project(repo, "## Task 1: One\n```write one.txt\none\n```\n")
    # What a tuiorch killed mid-merge leaves: an unfinished run state and git's lock on main's index.
    state_dir = repo / ".git" / "tuiorch"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "state.toml").write_text(
        'version = 1\nbase = "main"\nfinished = false\norder = ["1"]\n\n[tasks.1]\nstatus = "merging"\n'
    )
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    code, events = run(repo)
    assert code == 0
    assert not lock.exists()
    assert any(e["event"] == "notice" and "index.lock" in e["message"] for e in events)
    assert git(repo, "show", "main:one.txt") == "one"


def test_mains_lock_is_left_to_its_owner_unless_the_dead_run_was_merging(repo: Path) -> None:
    from tuiorch.runlock import clear_stale_git_locks

    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    assert clear_stale_git_locks(repo / ".git", "main", was_merging=False) == []
    assert lock.exists()
    assert clear_stale_git_locks(repo / ".git", "main", was_merging=True) == [lock]
    assert not lock.exists()


def test_a_resumed_run_ends_agents_whose_group_the_dead_run_never_recorded(repo: Path) -> None:
    from tuiorch.runlock import kill_orphan_agents

    env = dict(os.environ, TUIORCH_GIT_DIR=str((repo / ".git").resolve()))
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(0.2)
        assert kill_orphan_agents(repo / ".git") == [orphan.pid]
        assert orphan.wait(timeout=5) == -9
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
