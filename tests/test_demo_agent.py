"""The demo agent run as a real program in real worktrees, and the demo repository it is made for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git
from tuiorch.agent import AgentProcess, ProcessHooks
from tuiorch.config import load_config
from tuiorch.demo import DemoError, make_demo_repo
from tuiorch.prompt import BUILTIN_TEMPLATE, RESOLVE_TEMPLATE, render_prompt, render_resolve_prompt
from tuiorch.scheduler import pick_tasks, touches_overlap
from tuiorch.tasks import Priority, Task, load_tasks

DEMO = [sys.executable, "-m", "tuiorch.demo_agent"]


def worktree(repo: Path, branch: str) -> Path:
    path = repo.parent / "worktrees" / branch
    git(repo, "worktree", "add", "-q", "-b", branch, str(path), "main")
    return path


def prompt_file(wt: Path, task: Task, branch: str) -> Path:
    text = render_prompt(
        BUILTIN_TEMPLATE,
        task=task,
        worktree=wt,
        branch=branch,
        agent_name="tuiorch demo agent",
        agent_email="demo@tuiorch.invalid",
    )
    path = wt.parent.parent / f"prompt-{task.id}.md"
    path.write_text(text)
    return path


def run_demo(repo: Path, task: Task) -> tuple[subprocess.CompletedProcess[str], Path]:
    branch = f"task-{task.id}"
    wt = worktree(repo, branch)
    done = subprocess.run([*DEMO, str(prompt_file(wt, task, branch))], cwd=wt, capture_output=True, text=True, timeout=60)
    return done, wt


def commits_since_main(wt: Path) -> list[str]:
    return git(wt, "log", "--format=%H", "main..HEAD").split()


WRITE_BODY = """Add a module and extend the README.

```write src/calc/mul.py
def mul(a, b):
    return a * b
```

```append README.md
## Multiplication
Use {mul}.
```
"""


def test_writes_files_and_commits_with_the_task_format(repo: Path) -> None:
    task = Task(id="4", title="Multiply {things}", description=WRITE_BODY, type="feat")
    done, wt = run_demo(repo, task)
    assert done.returncode == 0, done.stderr
    assert (wt / "src/calc/mul.py").read_text() == "def mul(a, b):\n    return a * b\n"
    assert (wt / "README.md").read_text() == "# demo\n## Multiplication\nUse {mul}.\n"
    assert git(wt, "status", "--porcelain") == ""
    assert len(commits_since_main(wt)) == 1
    assert git(wt, "log", "-1", "--format=%B") == (
        "feat: Multiply {things}\n\nRefs: TASKS.md#task-4\n"
        "Co-Authored-By: tuiorch demo agent <demo@tuiorch.invalid>"
    )
    assert git(wt, "log", "-1", "--format=%an <%ae>") == "tuiorch demo agent <demo@tuiorch.invalid>"
    lines = done.stdout.splitlines()
    assert "writing src/calc/mul.py" in lines
    assert [line for line in lines if line.startswith("PROGRESS:")] == [
        "PROGRESS: 1/4 read task",
        "PROGRESS: 2/4 write src/calc/mul.py",
        "PROGRESS: 3/4 append README.md",
        "PROGRESS: 4/4 committed",
    ]


def test_nonzero_exit_is_honoured_without_a_commit(repo: Path) -> None:
    done, wt = run_demo(repo, Task(id="5", title="Fails", description=WRITE_BODY + "\nexit: 3\n"))
    assert done.returncode == 3
    assert (wt / "src/calc/mul.py").exists()
    assert commits_since_main(wt) == []


def test_exit_zero_still_commits(repo: Path) -> None:
    done, wt = run_demo(repo, Task(id="5", title="Fine", description=WRITE_BODY + "\nexit: 0\n"))
    assert done.returncode == 0
    assert len(commits_since_main(wt)) == 1


def test_nothing_changes_nothing(repo: Path) -> None:
    done, wt = run_demo(repo, Task(id="6", title="Idle", description=WRITE_BODY + "\nnothing\n"))
    assert done.returncode == 0
    assert git(wt, "status", "--porcelain") == ""
    assert commits_since_main(wt) == []


def test_no_commit_leaves_changes_uncommitted(repo: Path) -> None:
    done, wt = run_demo(repo, Task(id="7", title="Lazy", description=WRITE_BODY + "\nno-commit\n"))
    assert done.returncode == 0
    assert commits_since_main(wt) == []
    assert git(wt, "diff", "--name-only") == "README.md"
    assert git(wt, "ls-files", "--others", "--exclude-standard") == "src/calc/mul.py"


def test_paths_outside_the_worktree_are_refused(repo: Path) -> None:
    for bad in ("../escape.txt", "/tmp/tuiorch-demo-escape.txt", ".git/config"):
        body = f"```write {bad}\nowned\n```\n\n```write ok.txt\nfine\n```\n"
        done, wt = run_demo(repo, Task(id=f"bad{len(bad)}", title="Escape", description=body))
        assert done.returncode == 2
        assert "refusing to write" in done.stderr
        assert not (wt / "ok.txt").exists()  # nothing is written when any path is bad
    assert not (repo.parent / "worktrees" / "escape.txt").exists()
    assert not Path("/tmp/tuiorch-demo-escape.txt").exists()


def test_unclosed_block_is_a_clear_error(repo: Path) -> None:
    done, _ = run_demo(repo, Task(id="8", title="Broken", description="```write a.txt\nno end"))
    assert done.returncode == 2
    assert "never closed" in done.stderr
    assert "Traceback" not in done.stderr


def test_prompt_that_is_not_from_the_template_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.md"
    bad.write_text("Please implement the thing.\n")
    done = subprocess.run([*DEMO, str(bad)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "cannot find the task heading" in done.stderr


def test_resolver_turns_a_real_conflict_into_a_committed_merge(repo: Path) -> None:
    (repo / "README.md").write_text("# demo\nmain line\n")
    git(repo, "commit", "-q", "-am", "main edits README")
    wt = repo.parent / "worktrees" / "task-9"
    git(repo, "worktree", "add", "-q", "-b", "task-9", str(wt), "main~1")
    (wt / "README.md").write_text("# demo\ntask line\n")
    git(wt, "commit", "-q", "-am", "task edits README")
    merge = subprocess.run(["git", "merge", "main"], cwd=wt, capture_output=True, text=True)
    assert merge.returncode == 1 and "<<<<<<<" in (wt / "README.md").read_text()

    task = Task(id="9", title="Task side", description="")
    text = render_resolve_prompt(
        RESOLVE_TEMPLATE,
        task=task,
        worktree=wt,
        branch="task-9",
        files=[("README.md", "# demo\n", "# demo\nmain line\n", "# demo\ntask line\n")],
    )
    (repo.parent / "resolve.md").write_text(text)
    done = subprocess.run([*DEMO, str(repo.parent / "resolve.md")], cwd=wt, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (wt / "README.md").read_text() == "# demo\ntask line\nmain line\n"  # ours (HEAD) then theirs
    assert git(wt, "status", "--porcelain") == ""
    assert len(git(wt, "log", "-1", "--format=%P").split()) == 2
    assert git(wt, "merge-base", "--is-ancestor", "main", "HEAD") == ""
    assert "PROGRESS: 1/2 resolved README.md" in done.stdout


async def test_under_the_runner_sleep_is_flagged_stuck_and_hang_times_out(repo: Path) -> None:
    wt = worktree(repo, "task-10")
    body = "lines: 300\nsleep: 1\n\n```write x.txt\nx\n```\n"
    stuck: list[float] = []
    agent = AgentProcess(
        [*DEMO, str(prompt_file(wt, Task(id="10", title="Slow", description=body), "task-10"))],
        wt,
        repo.parent / "10.log",
        stuck_after=0.4,
        hooks=ProcessHooks(on_stuck=stuck.append),
    )
    result = await agent.run()
    assert result.code == 0
    assert len(stuck) == 1
    assert agent.lines > 300
    assert "demo output line 300 of 300" in (repo.parent / "10.log").read_text()

    wt = worktree(repo, "task-11")
    hang = AgentProcess(
        [*DEMO, str(prompt_file(wt, Task(id="11", title="Hangs", description="hang"), "task-11"))],
        wt,
        repo.parent / "11.log",
        timeout=1.0,
    )
    result = await hang.run()
    assert result.timed_out
    assert commits_since_main(wt) == []


# -- the demo repository ---------------------------------------------------------------------------------


def test_demo_repo_is_committed_and_its_queue_shows_everything(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path / "demo")
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(root, "log", "--format=%an <%ae>") == "tuiorch demo <demo@tuiorch.invalid>"
    config = load_config(root)
    assert (config.agent.preset, config.workers) == ("demo", 3)

    tasks = {t.id: t for t in load_tasks(root / "TASKS.md")}
    assert len(tasks) == 8
    assert {t.priority for t in tasks.values()} == set(Priority)
    assert any(len(t.depends) >= 2 for t in tasks.values())
    assert any("sleep: 1" in t.description.splitlines() for t in tasks.values())
    # Two tasks kept apart by their touches...
    assert touches_overlap(tasks["1"].touches, tasks["5"].touches)
    # ...and two that are not, though both edit README.md: the deliberate conflict.
    for conflicting in ("2", "3"):
        assert tasks[conflicting].touches == () and tasks[conflicting].depends == ()
        assert "```append README.md" in tasks[conflicting].description
    # With 3 workers the first wave is 1, 2 and 3: the two README tasks really do run side by side.
    first_wave = pick_tasks(list(tasks.values()), [], set(), config.workers)
    assert [t.id for t in first_wave] == ["1", "2", "3"]
    # Everything the demo agent changes, it changes through write/append blocks.
    for task in tasks.values():
        assert "```write " in task.description or "```append " in task.description


def test_demo_repo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("mine")
    with pytest.raises(DemoError, match="not an empty directory"):
        make_demo_repo(tmp_path / "busy")
    assert (tmp_path / "busy" / "file.txt").read_text() == "mine"


def test_demo_tasks_done_by_the_demo_agent_merge_except_the_one_conflict(tmp_path: Path) -> None:
    """Every demo task, done by the real demo agent and merged --no-ff in order; tasks 2 and 3 start
    from the same main (they run side by side), so 3 conflicts on README.md and nothing else does."""
    root = make_demo_repo(tmp_path / "demo")
    tasks = load_tasks(root / "TASKS.md")  # file order is a valid dependency order
    base_before_2 = ""
    for task in tasks:
        branch = f"task-{task.id}"
        start = base_before_2 if task.id == "3" else git(root, "rev-parse", "main")
        if task.id == "2":
            base_before_2 = start
        wt = tmp_path / "worktrees" / branch
        git(root, "worktree", "add", "-q", "-b", branch, str(wt), start)
        done = subprocess.run([*DEMO, str(prompt_file(wt, task, branch))], cwd=wt, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (task.id, done.stderr)
        assert len(git(wt, "log", "--format=%H", f"{start}..HEAD").split()) == 1, task.id
        merge = subprocess.run(
            ["git", "merge", "--no-ff", "-q", "-m", f"merge {branch}", branch], cwd=root, capture_output=True, text=True
        )
        if task.id == "3":
            assert merge.returncode == 1
            assert git(root, "diff", "--name-only", "--diff-filter=U") == "README.md"
            git(root, "merge", "--abort")
        else:
            assert merge.returncode == 0, (task.id, merge.stdout, merge.stderr)
    assert "def power(" in (root / "calc/ops.py").read_text()
    assert "## Usage" in (root / "README.md").read_text()
    assert (root / "CHANGELOG.md").exists()
