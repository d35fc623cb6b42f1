"""The `tuiorch` subcommands as a user types them: init, status, clean, demo (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import git, make_repo
from tests.test_faults import merges_per_task
from tuiorch.config import load_config
from tuiorch.confine.bwrap import bubblewrap_problem
from tuiorch.tasks import load_tasks

CONFLICTING = """\
    ## Task 1: Says hello
    ```write README.md
    hello from one
    ```

    ## Task 2: Says goodbye
    sleep: 0.5
    ```write README.md
    goodbye from two
    ```

    ## Task 3: Adds a file
    ```write three.txt
    three
    ```
"""


def tuiorch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuiorch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def write_project(repo: Path, tasks_md: str, extra: str = "") -> None:
    (repo / "tuiorch.toml").write_text(
        f'workers = 2\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n{extra}'
    )
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks_md))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").split()


def worktree_paths(repo: Path) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


# -- init --------------------------------------------------------------------------------------------------


def test_init_writes_a_config_that_loads_and_a_task_template_that_parses(repo: Path) -> None:
    done = tuiorch(repo, "init", "--preset", "demo")
    assert done.returncode == 0, done.stderr
    assert "tuiorch.toml" in done.stdout and "TASKS.md" in done.stdout
    config = load_config(repo)
    assert config.agent.preset == "demo"
    tasks = load_tasks(repo / "TASKS.md")
    assert len(tasks) >= 1 and tasks[0].title


def test_init_default_preset_is_claude_and_loads(repo: Path) -> None:
    assert tuiorch(repo, "init").returncode == 0
    assert load_config(repo).agent.preset == "claude"


def test_init_refuses_to_overwrite_without_force(repo: Path) -> None:
    (repo / "tuiorch.toml").write_text("workers = 7\n")
    (repo / "TASKS.md").write_text("## Task 9: Mine\n")
    done = tuiorch(repo, "init")
    assert done.returncode == 2
    assert "--force" in done.stderr and "Traceback" not in done.stderr
    assert (repo / "tuiorch.toml").read_text() == "workers = 7\n"

    forced = tuiorch(repo, "init", "--force", "--preset", "demo")
    assert forced.returncode == 0, forced.stderr
    assert load_config(repo).workers != 7
    assert (repo / "TASKS.md").read_text() == "## Task 9: Mine\n"  # an existing task file is never replaced


def test_init_writes_the_checked_out_branch_as_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "old", branch="master")
    done = tuiorch(repo, "init", "--preset", "demo")
    assert done.returncode == 0, done.stderr
    assert 'base = "master"' in (repo / "tuiorch.toml").read_text()
    assert load_config(repo).base == "master"
    assert 'base = "master"' in done.stdout


def test_init_with_an_unknown_preset_exits_2_and_writes_nothing(repo: Path) -> None:
    done = tuiorch(repo, "init", "--preset", "hal9000")
    assert done.returncode == 2
    assert "hal9000" in done.stderr and "Traceback" not in done.stderr
    assert not (repo / "tuiorch.toml").exists()
    assert not (repo / "TASKS.md").exists()


# -- status ------------------------------------------------------------------------------------------------


def test_status_before_any_run(repo: Path) -> None:
    done = tuiorch(repo, "status")
    assert done.returncode == 0
    assert "no run" in done.stdout
    assert json.loads(tuiorch(repo, "status", "--json").stdout) == {"run": None}


def test_status_and_status_json_after_a_headless_run(repo: Path) -> None:
    write_project(repo, CONFLICTING)
    run = tuiorch(repo, "run", "--headless")
    assert run.returncode == 1, run.stdout + run.stderr

    text = tuiorch(repo, "status")
    assert text.returncode == 0
    assert "2 merged" in text.stdout and "1 conflict" in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.split()[:1] == ["2"])
    assert "conflict" in row and "README.md" in row

    data = json.loads(tuiorch(repo, "status", "--json").stdout)
    assert data["order"] and set(data["order"]) == {"1", "2", "3"}
    assert {k: v["status"] for k, v in data["tasks"].items()} == {
        "1": "merged",
        "2": "conflict",
        "3": "merged",
    }
    merged_commit = data["tasks"]["3"]["commit"]
    assert git(repo, "rev-list", "--parents", "-n", "1", merged_commit).count(" ") == 2  # two parents
    assert data["tasks"]["2"]["paths"] == ["README.md"]


# -- clean -------------------------------------------------------------------------------------------------


def test_clean_removes_worktrees_and_merged_branches_and_keeps_unmerged_work(repo: Path) -> None:
    write_project(repo, CONFLICTING, extra="\n[slots]\nkeep_at_end = true\n")
    assert tuiorch(repo, "run", "--headless").returncode == 1
    git(repo, "branch", "task-old", "main")  # a merged leftover
    assert len(worktree_paths(repo)) > 1  # keep_at_end left the slot worktrees

    done = tuiorch(repo, "clean")
    assert done.returncode == 0, done.stderr
    assert worktree_paths(repo) == [str(repo)]
    assert not [p for p in (repo.parent / "repo-worktrees").glob("*")]
    assert "task-old" not in branches(repo)
    assert "task-2" in branches(repo)  # its commits are not in main
    assert "task-2" in done.stdout and "--force" in done.stdout
    assert "deleted merged branch task-old" in done.stdout

    forced = tuiorch(repo, "clean", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "task-2" not in branches(repo)
    assert "feat: Says goodbye" in forced.stdout  # the dropped commit is named
    assert git(repo, "status", "--porcelain") == ""


def test_clean_refuses_a_live_run_and_status_shows_it_live(repo: Path) -> None:
    write_project(repo, "## Task 1: Slow\nsleep: 4\n```write a.txt\na\n```\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert run.stdout is not None
        for line in run.stdout:
            if json.loads(line)["event"] == "task_started":
                break
        before = worktree_paths(repo), branches(repo)
        assert "task-1" in before[1]

        status = tuiorch(repo, "status")
        assert status.returncode == 0
        assert f"run live (pid {run.pid})" in status.stdout, status.stdout
        assert "running" in status.stdout
        data = json.loads(tuiorch(repo, "status", "--json").stdout)
        assert data["live"] is True and data["pid"] == str(run.pid)
        # Whether the agent is confined to its worktree and branch: where bubblewrap works, it is.
        confined = bubblewrap_problem() is None
        assert data["tasks"]["1"]["confined"] is confined
        row = next(line for line in status.stdout.splitlines() if line.split()[:1] == ["1"])
        assert ("unconfined" not in row and "confined" in row) if confined else "unconfined" in row

        for args in (("clean",), ("clean", "--force")):
            clean = tuiorch(repo, *args)
            assert clean.returncode == 2, clean.stdout
            assert f"pid {run.pid}" in clean.stderr and "Traceback" not in clean.stderr
            assert (worktree_paths(repo), branches(repo)) == before

        run.stdout.read()
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert git(repo, "show", "main:a.txt") == "a"
    after = tuiorch(repo, "status")
    assert "live" not in after.stdout and "run finished" in after.stdout


def test_clean_with_nothing_to_clean(repo: Path) -> None:
    done = tuiorch(repo, "clean")
    assert done.returncode == 0
    assert "nothing to clean" in done.stdout


# -- demo --------------------------------------------------------------------------------------------------


def test_demo_headless_merges_seven_and_exits_1_for_its_one_conflict(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    done = tuiorch(tmp_path, "demo", str(target), "--headless")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    counts = merges_per_task(target)
    assert sum(counts.values()) == 7 and all(n == 1 for n in counts.values()), counts
    assert "conflict" in done.stdout
    markers = subprocess.run(["git", "grep", "-l", "-e", "^<<<<<<<", "main"], cwd=target, capture_output=True)
    assert markers.returncode == 1 and markers.stdout == b""  # no file on main holds conflict markers
    assert git(target, "status", "--porcelain") == ""


def test_demo_help_says_how_to_change_its_pace(tmp_path: Path) -> None:
    done = tuiorch(tmp_path, "demo", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--pace SECONDS" in text and "TUIORCH_DEMO_DELAY" in text and "2 s per step" in text


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("mine\n")
    done = tuiorch(tmp_path, "demo", str(tmp_path / "busy"), "--headless")
    assert done.returncode == 2
    assert "not an empty folder" in done.stderr
    assert (tmp_path / "busy" / "file.txt").read_text() == "mine\n"


def test_report_prints_the_last_runs_summary_with_main_commits(repo: Path) -> None:
    from tests.test_headless import write_project

    write_project(repo, "## Task 1: Add alpha\n```write alpha.txt\nalpha\n```\n")
    done = subprocess.run([sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = subprocess.run([sys.executable, "-m", "tuiorch", "report"], cwd=repo, capture_output=True, text=True)
    assert report.returncode == 0
    merge = git(repo, "rev-parse", "--short=7", "main")
    assert "1  merged" in report.stdout and "Add alpha" in report.stdout
    assert f"{merge} feat: Add alpha" in report.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "tuiorch", "report", "--json"], cwd=repo, capture_output=True, text=True
    )
    data = json.loads(as_json.stdout)
    assert data["merged"] == 1 and data["tasks"][0]["commit"].startswith(merge)
