"""Conflicts seen coming, and agents that resolve them (headless, real repos, the real demo agent)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.conftest import git
from tests.test_headless import of, run, task_branches, worktrees, write_project

README_CLASH = """\
    ## Task 1: Hello README
    ```write README.md
    hello from one
    ```

    ## Task 2: Goodbye README
    sleep: 0.3
    linger: 2
    ```write README.md
    goodbye from two
    ```
"""


def test_a_running_branch_that_will_conflict_is_flagged_before_it_finishes(repo: Path) -> None:
    write_project(repo, README_CLASH)
    code, events = run(repo)
    assert code == 1
    names = [(e["event"], e.get("task")) for e in events]
    predicted = of(events, "conflict_predicted", "2")
    assert predicted and predicted[0]["paths"] == ["README.md"]
    assert names.index(("merged", "1")) < names.index(("conflict_predicted", "2"))
    assert names.index(("conflict_predicted", "2")) < names.index(("task_finished", "2"))


def test_a_queued_task_touching_a_predicted_conflict_waits(repo: Path) -> None:
    write_project(
        repo,
        # Task 1 merges well after task 2 has committed (margins for a loaded 2-core machine).
        README_CLASH.replace("## Task 1: Hello README\n", "## Task 1: Hello README\n    sleep: 3\n").replace(
            "linger: 2", "linger: 5"
        )
        + """
    ## Task 3: Docs next to README
    depends: 1
    touches: README.md
    ```write docs.txt
    docs
    ```
""",
        workers=3,
        extra='\n[merge]\non_conflict = "requeue"\n',
    )
    code, events = run(repo)
    names = [(e["event"], e.get("task")) for e in events]
    # 3 became eligible when 1 merged, but 2's branch was predicted to conflict on README.md.
    assert names.index(("conflict_predicted", "2")) < names.index(("task_started", "3"))
    assert names.index(("task_finished", "2")) < names.index(("task_started", "3"))
    assert code == 0


def test_the_resolver_agent_merges_both_sides_without_markers(repo: Path) -> None:
    write_project(repo, README_CLASH.replace("linger: 2", "linger: 0"), extra='\n[merge]\non_conflict = "agent"\n')
    code, events = run(repo)
    assert code == 0, events
    assert of(events, "conflict", "2")
    merged = of(events, "merged", "2")[0]["commit"]
    text = git(repo, "show", f"{merged}:README.md")
    assert "hello from one" in text and "goodbye from two" in text
    assert "<<<<<<<" not in text and ">>>>>>>" not in text
    assert len(git(repo, "rev-list", "--parents", "-n", "1", merged).split()) == 3
    assert task_branches(repo) == []
    assert worktrees(repo) == [f"worktree {repo}"]


def test_the_resolver_attempt_cap_hands_the_conflict_to_a_human(repo: Path, tmp_path: Path) -> None:
    # An agent that does its task but cannot resolve anything: it exits 1 on a resolver prompt.
    script = tmp_path / "stubborn.py"
    script.write_text(
        textwrap.dedent(
            """\
            import subprocess, sys
            from pathlib import Path
            prompt = Path(sys.argv[1]).read_text()
            if "resolve" in Path(sys.argv[1]).name:
                print("I give up")
                sys.exit(1)
            sys.exit(subprocess.call([sys.executable, "-m", "tuiorch.demo_agent", sys.argv[1]]))
            """
        )
    )
    write_project(
        repo,
        README_CLASH.replace("linger: 2", "linger: 0"),
        extra='\n[merge]\non_conflict = "agent"\nresolve_attempts = 2\n',
    )
    config = (repo / "tuiorch.toml").read_text().replace(
        'preset = "demo"',
        f'preset = "custom"\ncommand = ["{sys.executable}", "{script}", "{{prompt_file}}"]',
    )
    (repo / "tuiorch.toml").write_text(config)
    git(repo, "commit", "-qam", "custom agent")
    code, events = run(repo)
    assert code == 1
    notices = [e for e in events if e["event"] == "notice" and "resolving" in e.get("message", "")]
    assert len(notices) == 2
    final = of(events, "run_finished")[0]
    row = next(t for t in final["tasks"] if t["id"] == "2")
    assert row["status"] == "conflict"
    assert git(repo, "show", "main:README.md") == "hello from one"
    assert "task-2" in task_branches(repo)


def _custom_resolver(repo: Path, tmp_path: Path, resolve_code: str, *, moves_main: bool = False) -> None:
    """The demo agent for tasks; `resolve_code` (Python, with `prompt`, `worktree`, `root`, `git`) for resolutions.

    moves_main: the resolver commits on main in the user's checkout (to move main under the resolution),
    which only an unconfined agent can do.
    """
    script = tmp_path / "resolver.py"
    script.write_text(
        "import os, subprocess, sys\nfrom pathlib import Path\n"
        "prompt = Path(sys.argv[1]).read_text()\n"
        "root = Path(os.environ['TUIORCH_GIT_DIR']).parent\n"
        "def git(cwd, *args):\n    subprocess.run(['git', *args], cwd=cwd, check=True)\n"
        "if 'resolve' in Path(sys.argv[1]).name:\n"
        "    worktree = Path(prompt.split('merge conflict in a git worktree at: ')[1].splitlines()[0])\n"
        + textwrap.indent(textwrap.dedent(resolve_code), "    ")
        + "\nelse:\n    sys.exit(subprocess.call([sys.executable, '-m', 'tuiorch.demo_agent', sys.argv[1]]))\n"
    )
    config = (repo / "tuiorch.toml").read_text().replace(
        'preset = "demo"',
        f'preset = "custom"\ncommand = ["{sys.executable}", "{script}", "{{prompt_file}}"]'
        + ('\nconfine = "off"' if moves_main else ""),
    )
    (repo / "tuiorch.toml").write_text(config)
    git(repo, "commit", "-qam", "custom agent")


def test_a_resolution_that_commits_markers_never_reaches_main(repo: Path, tmp_path: Path) -> None:
    write_project(repo, README_CLASH.replace("linger: 2", "linger: 0"), extra='\n[merge]\non_conflict = "agent"\n')
    _custom_resolver(repo, tmp_path, "git(worktree, 'add', '-A')\ngit(worktree, 'commit', '-q', '--no-edit')\n")
    code, events = run(repo)
    assert code == 1
    failures = [e["message"] for e in of(events, "notice") if "resolver agent failed" in e["message"]]
    assert failures == ["task 2: the resolver agent failed: conflict markers remain in README.md"] * 2
    assert git(repo, "show", "main:README.md") == "hello from one"
    # The failed attempts' merge commits are gone from the branch: it holds the task's work only.
    assert git(repo, "show", "task-2:README.md") == "goodbye from two"
    assert git(repo, "rev-list", "--merges", "main..task-2") == ""


def test_a_resolution_is_accepted_although_main_moved_meanwhile(repo: Path, tmp_path: Path) -> None:
    write_project(repo, README_CLASH.replace("linger: 2", "linger: 0"), extra='\n[merge]\non_conflict = "agent"\n')
    _custom_resolver(
        repo,
        tmp_path,
        """\
        (root / "elsewhere.txt").write_text("landed meanwhile\\n")
        git(root, "add", "elsewhere.txt")
        git(root, "commit", "-q", "-m", "another merge landed meanwhile")
        sys.exit(subprocess.call([sys.executable, "-m", "tuiorch.demo_agent", sys.argv[1]]))
        """,
        moves_main=True,
    )
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] in ("notice", "conflict")]
    merged = of(events, "merged", "2")[0]["commit"]
    assert git(repo, "show", f"{merged}:elsewhere.txt") == "landed meanwhile"
    readme = git(repo, "show", f"{merged}:README.md")
    assert "hello from one" in readme and "goodbye from two" in readme and "<<<<<<<" not in readme
    # The resolution keeps the task's message and trailer, not "Merge branch 'main'" with #Conflicts lines.
    resolution = git(repo, "log", "-1", "--format=%B", f"{merged}^2")
    assert resolution.startswith("feat: Goodbye README\n\nMerge main into task-2; conflicts resolved in README.md.")
    assert "Refs: TASKS.md#task-2" in resolution and "Conflicts" not in resolution


def test_no_resolver_runs_when_nothing_conflicts_any_more(repo: Path, tmp_path: Path) -> None:
    write_project(
        repo,
        README_CLASH.replace("linger: 2", "linger: 0"),
        extra='\n[merge]\non_conflict = "agent"\nresolve_attempts = 3\n',
    )
    # First resolution: main takes the task's README itself, then the agent gives up. Nothing conflicts after.
    _custom_resolver(
        repo,
        tmp_path,
        """\
        with open(root / ".git" / "resolver-runs", "a") as runs:
            runs.write("run\\n")
        (root / "README.md").write_text("goodbye from two\\n")
        git(root, "commit", "-q", "-am", "main takes the same README")
        sys.exit(1)
        """,
        moves_main=True,
    )
    code, events = run(repo)
    assert code == 0, [e for e in events if e["event"] in ("notice", "conflict")]
    assert (repo / ".git" / "resolver-runs").read_text() == "run\n"  # started once, not for "(none listed)"
    assert of(events, "merged", "2")
