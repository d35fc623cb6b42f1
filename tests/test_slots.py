"""Warm slot worktrees: every task starts from main's tip on a clean tree; only `keep` survives."""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from pathlib import Path

from tests.conftest import git, make_repo
from tests.test_headless import of, run, task_branches, worktrees

# A real agent that records what it finds in its worktree, leaves ignored junk behind, and commits.
SNOOP = textwrap.dedent(
    """\
    import json, os, subprocess, sys
    from pathlib import Path
    task = os.environ["TUIORCH_TASK"]
    root = Path(sys.argv[1])
    seen = sorted(
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts[:1]
    )
    (root / f"seen-{task}.json").write_text(json.dumps(seen))
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / f"junk-{task}.o").write_text("junk")
    (root / ".venv").mkdir(exist_ok=True)
    (root / ".venv" / f"kept-{task}").write_text("kept")
    (root / f"untracked-{task}.tmp").write_text("stray")
    subprocess.run(["git", "add", f"seen-{task}.json"], cwd=root, check=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="snoop", GIT_AUTHOR_EMAIL="s@x", GIT_COMMITTER_NAME="snoop",
               GIT_COMMITTER_EMAIL="s@x")
    subprocess.run(["git", "commit", "-q", "-m", f"feat: seen by {task}"], cwd=root, check=True, env=env)
    """
)


def snoop_project(tmp_path: Path, *, tasks: int = 3, extra: str = "") -> Path:
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "build/\n.venv/\n*.tmp\n"})
    script = tmp_path / "snoop.py"
    script.write_text(SNOOP)
    (repo / "tuiorch.toml").write_text(
        textwrap.dedent(
            f"""\
            workers = 1

            [agent]
            preset = "custom"
            command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, "{{worktree}}"]
            stuck_after = "0"
            """
        )
        + extra
    )
    (repo / "TASKS.md").write_text("".join(f"## Task {i}: Snoop {i}\n\n" for i in range(1, tasks + 1)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tasks")
    return repo


def seen_by(repo: Path, task: str) -> list[str]:
    return json.loads(git(repo, "show", f"main:seen-{task}.json"))


def test_a_reused_slot_never_shows_one_tasks_leftovers_to_the_next(tmp_path: Path) -> None:
    repo = snoop_project(tmp_path, extra='\n[slots]\nkeep = [".venv"]\n')
    code, events = run(repo)
    assert code == 0
    started = of(events, "task_started")
    assert {e["worktree"] for e in started} == {str(tmp_path / "repo-worktrees" / "slot-1")}
    second, third = seen_by(repo, "2"), seen_by(repo, "3")
    # Task 2 starts from a main that has task 1's merge, and nothing task 1 left untracked.
    assert "seen-1.json" in second
    assert "build/junk-1.o" not in second and "untracked-1.tmp" not in second
    # `keep` paths survive between tasks in a slot.
    assert ".venv/kept-1" in second
    assert {"seen-1.json", "seen-2.json", ".venv/kept-1", ".venv/kept-2"} <= set(third)
    assert "build/junk-2.o" not in third
    assert worktrees(repo) == [f"worktree {repo}"]
    assert task_branches(repo) == []


def test_without_reuse_each_task_gets_its_own_fresh_worktree(tmp_path: Path) -> None:
    repo = snoop_project(tmp_path, tasks=2, extra="\n[slots]\nreuse = false\n")
    code, events = run(repo)
    assert code == 0
    assert [e["worktree"] for e in of(events, "task_started")] == [
        str(tmp_path / "repo-worktrees" / "task-1"),
        str(tmp_path / "repo-worktrees" / "task-2"),
    ]
    assert ".venv/kept-1" not in seen_by(repo, "2")
    assert worktrees(repo) == [f"worktree {repo}"]


def test_slot_setup_runs_once_per_slot_worktree(tmp_path: Path) -> None:
    setup = shlex.join(
        [sys.executable, "-c", "import pathlib; p = pathlib.Path('.venv'); p.mkdir(exist_ok=True);"
         " open(p / 'setup.log', 'a').write('ran\\n')"]
    )
    repo = snoop_project(tmp_path, extra=f'\n[slots]\nkeep = [".venv"]\nsetup = {json.dumps(setup)}\nkeep_at_end = true\n')
    code, _ = run(repo)
    assert code == 0
    slot = tmp_path / "repo-worktrees" / "slot-1"
    assert (slot / ".venv" / "setup.log").read_text() == "ran\n"
    assert ".venv/setup.log" in seen_by(repo, "1")  # setup ran before the first agent


def test_a_failing_setup_fails_the_task_with_the_reason(tmp_path: Path) -> None:
    setup = shlex.join([sys.executable, "-c", "raise SystemExit(4)"])
    repo = snoop_project(tmp_path, tasks=1, extra=f"\n[slots]\nsetup = {json.dumps(setup)}\n")
    code, events = run(repo)
    assert code == 1
    assert "setup" in of(events, "task_failed", "1")[0]["reason"]
    assert worktrees(repo) == [f"worktree {repo}"]


def test_with_auto_merge_off_a_finished_task_waits_and_main_stays(tmp_path: Path) -> None:
    repo = snoop_project(tmp_path, tasks=1, extra='\n[merge]\nauto = false\n')
    head = git(repo, "rev-parse", "main")
    code, events = run(repo)
    assert code == 1
    assert of(events, "task_finished", "1") and not of(events, "merged")
    assert git(repo, "rev-parse", "main") == head
    assert "task-1" in task_branches(repo)


def test_a_slot_whose_checkout_a_killed_run_never_finished_is_reused(tmp_path: Path) -> None:
    # A run killed between registering a slot and finishing its checkout leaves files but no index.
    # No agent ever worked there, so the next run checks the slot out again instead of keeping it as
    # somebody's uncommitted work.
    repo = snoop_project(tmp_path, tasks=1)
    slot = tmp_path / "repo-worktrees" / "slot-1"
    git(repo, "worktree", "add", "-q", "--no-checkout", "--detach", str(slot), "main")
    (slot / "README.md").write_text("# r\n")
    code, events = run(repo)
    assert code == 0, of(events, "task_failed")
    assert [e["worktree"] for e in of(events, "task_started")] == [str(slot)]
    assert "seen-1.json" in git(repo, "ls-tree", "--name-only", "main")
    assert task_branches(repo) == []


def test_uncommitted_work_in_a_released_slot_is_saved_under_a_ref_and_the_slot_reused(tmp_path: Path) -> None:
    # What a killed run left uncommitted in a slot it had already released is nobody's task any more:
    # the next task still gets the slot, and the work is kept under refs/tuiorch/rescued/.
    repo = snoop_project(tmp_path, tasks=1)
    slot = tmp_path / "repo-worktrees" / "slot-1"
    git(repo, "worktree", "add", "-q", "--detach", str(slot), "main")
    (slot / "orphan.txt").write_text("half-done work\n")
    git(slot, "add", "orphan.txt")
    (slot / "untracked.txt").write_text("more work\n")
    code, events = run(repo)
    assert code == 0, of(events, "task_failed")
    assert [e["worktree"] for e in of(events, "task_started")] == [str(slot)]
    rescued = git(repo, "for-each-ref", "--format=%(refname)", "refs/tuiorch/rescued/").split()
    assert len(rescued) == 1
    assert git(repo, "show", f"{rescued[0]}:orphan.txt") == "half-done work"
    assert git(repo, "show", f"{rescued[0]}:untracked.txt") == "more work"
    assert any(rescued[0] in e["message"] for e in of(events, "notice"))
    assert "orphan.txt" not in git(repo, "ls-tree", "--name-only", "main")
    assert task_branches(repo) == []
