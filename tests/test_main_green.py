"""[merge] check through the whole engine: main only ever moves to merge commits that passed."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import git, make_repo
from tests.test_headless import of, run, task_branches, worktrees, write_project

NO_BAD_FILE = shlex.join([sys.executable, "-c", "import os, sys; sys.exit(1 if os.path.exists('BAD') else 0)"])

TASKS = """\
    ## Task 1: Good change
    ```write good.txt
    good
    ```

    ## Task 2: Breaks the build
    ```write BAD
    broken
    ```

    ## Task 3: Another good change
    depends: 1
    ```write more.txt
    more
    ```
"""


def check_config(extra: str = "") -> str:
    return f"\n[merge]\ncheck = {json.dumps(NO_BAD_FILE)}\n{extra}"


def test_a_failing_check_keeps_main_clean_and_reports_check_failed(repo: Path) -> None:
    write_project(repo, TASKS, extra=check_config())
    code, events = run(repo)
    assert code == 1
    failed = of(events, "check_failed", "2")[0]
    assert failed["exit"] == 1
    assert {e["task"] for e in of(events, "merged")} == {"1", "3"}
    assert len(of(events, "check_started")) == 3
    assert not (repo / "BAD").exists()
    assert "BAD" not in git(repo, "ls-tree", "--name-only", "main").split()
    assert "task-2" in task_branches(repo)  # the work is kept for the user
    assert worktrees(repo) == [f"worktree {repo}"]  # the scratch worktree is gone too
    log = (repo / ".git" / "tuiorch" / "logs" / "2.log").read_text()
    assert "== check:" in log


def test_main_only_ever_points_at_commits_that_passed(repo: Path) -> None:
    start = git(repo, "rev-parse", "main")
    write_project(repo, TASKS + TASKS.replace("Task 1:", "Task 4:").replace("Task 2:", "Task 5:")
                  .replace("Task 3:", "Task 6:").replace("depends: 1", "depends: 4"), extra=check_config())
    code, events = run(repo)
    assert code == 1
    checked = {e["commit"] for e in of(events, "check_started")}
    first_parent = git(repo, "rev-list", "--first-parent", f"{start}..main").split()
    landed = first_parent[:-1]  # the oldest is the commit that added the task files
    assert landed and set(landed) <= checked
    for commit in landed:
        assert "BAD" not in git(repo, "ls-tree", "--name-only", commit).split()


def test_on_check_fail_agent_sends_the_failure_back_to_the_agent(repo: Path, tmp_path: Path) -> None:
    # A real agent: does its task with the demo agent; told that the check failed, it deletes BAD.
    fixer = tmp_path / "fixer.py"
    fixer.write_text(
        textwrap.dedent(
            """\
            import os, subprocess, sys
            from pathlib import Path
            prompt = Path(sys.argv[1]).read_text()
            if "fails the check" in prompt:
                print("the check failed; removing BAD")
                env = dict(os.environ, GIT_AUTHOR_NAME="fixer", GIT_AUTHOR_EMAIL="f@x",
                           GIT_COMMITTER_NAME="fixer", GIT_COMMITTER_EMAIL="f@x")
                subprocess.run(["git", "rm", "-q", "BAD"], check=True)
                subprocess.run(["git", "commit", "-q", "-m", "fix: remove BAD"], check=True, env=env)
                sys.exit(0)
            sys.exit(subprocess.call([sys.executable, "-m", "tuiorch.demo_agent", sys.argv[1]]))
            """
        )
    )
    write_project(repo, TASKS, extra=check_config('on_check_fail = "agent"\n'))
    config = (repo / "tuiorch.toml").read_text().replace(
        'preset = "demo"',
        f'preset = "custom"\ncommand = [{json.dumps(sys.executable)}, {json.dumps(str(fixer))}, "{{prompt_file}}"]',
    )
    (repo / "tuiorch.toml").write_text(config)
    git(repo, "commit", "-qam", "fixer agent")
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] in ("check_failed", "task_failed")]
    assert of(events, "check_failed", "2")
    assert [e["attempt"] for e in of(events, "task_started", "2")] == [1, 1]
    assert not (repo / "BAD").exists()
    assert "BAD" not in git(repo, "ls-tree", "--name-only", "main").split()


def test_on_check_fail_requeue_redoes_the_task_once(repo: Path) -> None:
    write_project(repo, TASKS, extra=check_config('on_check_fail = "requeue"\n'))
    code, events = run(repo)
    assert code == 1
    assert len(of(events, "task_started", "2")) == 2
    assert len(of(events, "check_failed", "2")) == 2
    assert "BAD" not in git(repo, "ls-tree", "--name-only", "main").split()


def test_a_checked_merge_blocked_by_the_users_file_lands_later_without_a_second_check(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "committed\n", "README.md": "# r\n"})
    write_project(
        repo,
        """\
        ## Task 1: Touches the user's file
        ```write notes.txt
        from the agent
        ```
        """,
        workers=1,
        extra=check_config(),
    )
    dirty = b"my unsaved work\n"
    (repo / "notes.txt").write_bytes(dirty)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    events: list[dict] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "merge_blocked":
                break
        assert of(events, "merge_blocked", "1")[0]["paths"] == ["notes.txt"]
        assert (repo / "notes.txt").read_bytes() == dirty
        git(repo, "stash")  # the user puts their change away; the next retry lands the merge
        events += [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=60) == 0, events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    checks = of(events, "check_started", "1")
    assert len(checks) == 1  # the commit that passed is the one that lands: no second check
    assert of(events, "merged", "1")[0]["commit"] == checks[0]["commit"] == git(repo, "rev-parse", "main")
    assert git(repo, "show", "main:notes.txt") == "from the agent"
