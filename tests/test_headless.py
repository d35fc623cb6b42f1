"""The engine end to end through the headless front end: real repos, the real demo agent."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch import events as ev
from tuiorch.config import load_config
from tuiorch.headless import _DETAILS, format_event, run_headless
from tuiorch.tasks import load_tasks


def write_project(repo: Path, tasks_md: str, *, workers: int = 2, extra: str = "") -> None:
    """tuiorch.toml (demo agent) and TASKS.md, committed so main's working tree starts clean."""
    (repo / "tuiorch.toml").write_text(
        f'workers = {workers}\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n{extra}'
    )
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks_md))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")


def run(repo: Path) -> tuple[int, list[dict]]:
    """Run headless in-process with --json; return the exit code and the events."""
    out = io.StringIO()
    config = load_config(repo)
    tasks = load_tasks(repo / "TASKS.md")
    code = run_headless(repo, config, tasks, task_file=repo / "TASKS.md", as_json=True, out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def of(events: list[dict], name: str, task: str | None = None) -> list[dict]:
    return [e for e in events if e["event"] == name and (task is None or e.get("task") == task)]


def task_branches(repo: Path) -> list[str]:
    return [b for b in git(repo, "branch", "--format=%(refname:short)").split() if b.startswith("task-")]


def worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


TWO_TASKS = """\
    ## Task 1: Add alpha
    type: feat

    ```write alpha.txt
    alpha
    ```

    ## Task 2: Fix beta
    type: fix

    ```write beta.txt
    beta
    ```
"""


def test_each_task_lands_as_a_two_parent_merge_with_the_configured_message(repo: Path) -> None:
    write_project(repo, TWO_TASKS)
    code, events = run(repo)
    assert code == 0
    assert {e["task"] for e in of(events, "merged")} == {"1", "2"}
    for merged in of(events, "merged"):
        parents = git(repo, "rev-list", "--parents", "-n", "1", merged["commit"]).split()[1:]
        assert len(parents) == 2
    log = git(repo, "log", "--first-parent", "--format=%B%x00", "main").split("\x00")
    messages = [m.strip() for m in log if m.strip()]
    assert "fix: Fix beta\n\nRefs: TASKS.md#task-2\nCo-Authored-By: tuiorch demo agent <demo@tuiorch.invalid>" in messages
    assert "feat: Add alpha\n\nRefs: TASKS.md#task-1\nCo-Authored-By: tuiorch demo agent <demo@tuiorch.invalid>" in messages
    assert (repo / "alpha.txt").read_text() == "alpha\n"  # main's checkout followed the merges
    assert git(repo, "status", "--porcelain") == ""
    assert of(events, "run_finished")[0]["merged"] == 2


def test_clean_run_leaves_no_worktree_and_no_task_branch(repo: Path) -> None:
    write_project(repo, TWO_TASKS)
    code, _ = run(repo)
    assert code == 0
    assert task_branches(repo) == []
    assert worktrees(repo) == [f"worktree {repo}"]
    assert not any((repo.parent / "repo-worktrees").glob("*"))


def test_a_dependent_task_starts_from_a_main_holding_its_dependencies(repo: Path) -> None:
    write_project(
        repo,
        """\
        ## Task 1: Base
        ```write base.txt
        base
        ```

        ## Task 2: Uses base
        depends: 1
        ```append base.txt
        more
        ```
        """,
    )
    code, events = run(repo)
    assert code == 0
    names = [(e["event"], e.get("task")) for e in events]
    assert names.index(("merged", "1")) < names.index(("task_started", "2"))
    assert (repo / "base.txt").read_text() == "base\nmore\n"


def test_tasks_whose_touches_overlap_never_run_together(repo: Path) -> None:
    write_project(
        repo,
        """\
        ## Task 1: First on src
        touches: src/
        sleep: 0.5
        ```write src/a.txt
        a
        ```

        ## Task 2: Second on src
        touches: src/b.txt
        sleep: 0.5
        ```write src/b.txt
        b
        ```

        ## Task 3: Elsewhere
        touches: docs/
        sleep: 0.5
        ```write docs/c.txt
        c
        ```
        """,
        workers=3,
    )
    code, events = run(repo)
    assert code == 0
    names = [(e["event"], e.get("task")) for e in events]
    # 3 runs beside 1; 2 waits for 1 to merge.
    assert names.index(("task_started", "3")) < names.index(("task_finished", "1"))
    assert names.index(("merged", "1")) < names.index(("task_started", "2"))


def test_a_conflict_leaves_main_untouched_and_names_the_file(repo: Path) -> None:
    write_project(
        repo,
        """\
        ## Task 1: Says hello
        ```write README.md
        hello from one
        ```

        ## Task 2: Says goodbye
        sleep: 0.5
        ```write README.md
        goodbye from two
        ```
        """,
    )
    code, events = run(repo)
    assert code == 1
    conflict = of(events, "conflict", "2")[0]
    assert conflict["paths"] == ["README.md"]
    assert (repo / "README.md").read_text() == "hello from one\n"
    assert "<<<<<<<" not in git(repo, "show", "main:README.md")
    assert git(repo, "status", "--porcelain") == ""
    assert "task-2" in task_branches(repo)  # the work is kept for triage


def test_a_failing_agent_is_reported_and_nothing_merges(repo: Path) -> None:
    write_project(
        repo,
        """\
        ## Task 1: Breaks
        exit: 3
        ```write broken.txt
        x
        ```
        """,
        extra="retries = 0\n",
    )
    head = git(repo, "rev-parse", "main")
    code, events = run(repo)
    assert code == 1
    assert of(events, "task_failed", "1")[0]["exit"] == 3
    assert git(repo, "rev-parse", "main") == head


def test_a_failed_attempt_is_retried_with_retries_set(repo: Path) -> None:
    write_project(repo, "## Task 1: Breaks\nexit: 3\n", extra="retries = 1\n")
    code, events = run(repo)
    assert code == 1
    assert [e["attempt"] for e in of(events, "task_started", "1")] == [1, 2]


def test_an_agent_that_changes_nothing_is_empty_not_merged(repo: Path) -> None:
    write_project(repo, "## Task 1: Idle\nnothing\n")
    head = git(repo, "rev-parse", "main")
    code, events = run(repo)
    assert code == 1
    assert of(events, "task_empty", "1")
    assert git(repo, "rev-parse", "main") == head
    assert task_branches(repo) == []


def test_uncommitted_leftovers_are_committed_and_merged(repo: Path) -> None:
    write_project(repo, "## Task 1: Forgets to commit\nno-commit\n```write left.txt\nleft\n```\n")
    code, events = run(repo)
    assert code == 0
    assert git(repo, "show", "main:left.txt") == "left"
    merge = of(events, "merged", "1")[0]["commit"]
    task_commit = git(repo, "rev-parse", f"{merge}^2")
    assert git(repo, "show", "-s", "--format=%s", task_commit) == "feat: Forgets to commit"


def test_a_users_dirty_file_survives_and_the_blocked_merge_waits_until_it_is_put_away(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": "committed\n", "README.md": "# r\n"})
    write_project(
        repo,
        """\
        ## Task 1: Unrelated
        ```write other.txt
        other
        ```

        ## Task 2: Touches the user's file
        ```write notes.txt
        from the agent
        ```
        """,
    )
    dirty = b"my unsaved work\n\x00 bytes \r\n kept\n"
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
        blocked = of(events, "merge_blocked", "2")[0]
        assert blocked["paths"] == ["notes.txt"] and "tuiorch retries" in blocked["reason"]
        # Blocked, the run keeps waiting (it does not give up and exit 1) and the user's bytes are untouched.
        time.sleep(2.5)
        assert proc.poll() is None
        assert (repo / "notes.txt").read_bytes() == dirty
        assert git(repo, "show", "main:other.txt") == "other"
        assert "notes.txt" not in git(repo, "show", "--stat", "main")
        # The user puts their change away; the next retry lands the merge and the run ends well.
        git(repo, "stash")
        events += [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=60) == 0, events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert of(events, "merged", "2")
    assert git(repo, "show", "main:notes.txt") == "from the agent"
    assert git(repo, "stash", "list")  # the user's work is in their stash


def test_shell_metacharacters_in_titles_and_bodies_are_never_executed(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write_project(
        repo,
        f"""\
        ## Task 1: $(touch {marker}) `touch {marker}`; touch {marker}
        type: feat

        Run $(touch {marker}) and `touch {marker}` | touch {marker} && touch {marker}
        ```write safe.txt
        $(touch {marker})
        ```
        """,
    )
    code, events = run(repo)
    assert code == 0
    assert not marker.exists()
    assert git(repo, "show", "main:safe.txt") == f"$(touch {marker})"
    subject = git(repo, "log", "-1", "--format=%s", "main")
    assert subject == f"feat: $(touch {marker}) `touch {marker}`; touch {marker}"


def test_a_commit_made_to_main_during_the_run_is_kept(repo: Path) -> None:
    write_project(repo, "## Task 1: Slow\nsleep: 1.5\n```write slow.txt\nslow\n```\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["event"] == "task_started":
            break
    (repo / "user.txt").write_text("user work\n")
    git(repo, "add", "user.txt")
    git(repo, "commit", "-q", "-m", "user commit during the run")
    user_commit = git(repo, "rev-parse", "HEAD")
    proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert subprocess.run(["git", "merge-base", "--is-ancestor", user_commit, "main"], cwd=repo).returncode == 0
    assert git(repo, "show", "main:slow.txt") == "slow"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("tasks_md", "message"),
    [
        ("## Task 1: A\n\n## Task 1: B\n", "TASKS.md:3: duplicate task id '1'"),
        ("## Task 1: A\ndepends: 9\n", "unknown"),
        ("## Task 1: A\ndepends: 2\n\n## Task 2: B\ndepends: 1\n", "cycle"),
        ("## Task a/b: A\n", "unsafe"),
        ("## Task 1: A\npriority: urgent\n", "priority"),
    ],
)
def test_bad_task_files_exit_2_naming_file_and_line(repo: Path, tasks_md: str, message: str) -> None:
    (repo / "TASKS.md").write_text(tasks_md)
    (repo / "tuiorch.toml").write_text('[agent]\npreset = "demo"\n')
    done = subprocess.run(
        [sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "TASKS.md" in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr
    assert task_branches(repo) == []


def test_bad_config_exits_2_naming_the_key(repo: Path) -> None:
    (repo / "TASKS.md").write_text("## Task 1: A\n")
    (repo / "tuiorch.toml").write_text('[agent]\npreset = "demo"\ntimeuot = "5m"\n')
    done = subprocess.run(
        [sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "timeuot" in done.stderr and "tuiorch.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_not_a_git_repository_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuiorch", "run", "--headless"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "git" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_every_printed_event_has_its_own_line() -> None:
    """A new printed event gets a formatter, not a bare event name on the user's terminal."""
    printed = {cls for cls in vars(ev).values() if isinstance(cls, type) and issubclass(cls, ev.Event) and cls.printed}
    assert printed - set(_DETAILS) == {ev.Event, ev.TaskEvent, ev.RunFinished}
    line = format_event(ev.ConflictFound(task="4", paths=("a.txt", "b.txt"), kinds={"b.txt": "add/add"}))
    assert line is not None and line.endswith("task 4 conflict in a.txt (content), b.txt (add/add)")
