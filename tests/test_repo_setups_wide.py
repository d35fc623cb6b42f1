"""A wider set of real-world repository setups, each tried with `tuiorch run --headless --json`.

Every test builds the setup in a real repository, runs tuiorch as a user would (a separate process,
a custom agent: a small Python script editing its worktree) and checks what the user would see:
main's tree against what `git merge --no-ff` of the same work gives, the checkout's `git status`,
or a refusal before anything runs that names the setting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import git, make_repo

#: An agent that edits one tracked file and adds another, leaving both uncommitted.
EDIT_AND_ADD = """\
import pathlib, sys
w = pathlib.Path(sys.argv[1])
(w / "a.txt").write_text("a changed\\n")
(w / "new.txt").write_text("new\\n")
"""


def project(repo: Path, tmp_path: Path, script: str) -> None:
    """tuiorch.toml with a custom agent running `script` in its worktree, and one task."""
    agent = tmp_path / "agent.py"
    agent.write_text(textwrap.dedent(script))
    (repo / "tuiorch.toml").write_text(
        f'workers = 1\n\n[agent]\npreset = "custom"\n'
        f'command = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}, "{{worktree}}"]\n'
        'timeout = "60s"\nstuck_after = "0"\n'
    )
    (repo / "TASKS.md").write_text("## Task 1: Edit\nedit a.txt, add new.txt\n")
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")


def run_tuiorch(repo: Path, *, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, list[dict], str]:
    """`tuiorch run --headless --json` in `repo`: exit code, events, stderr. A run still going at
    `timeout` (a merge held for good) is stopped with its process group and reported as exit -1."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = -1
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def merged_by_git(repo: Path, tmp_path: Path, script: Path) -> str:
    """main's tree after the same agent's work goes through `git add -A`, `git commit`, `git merge --no-ff`
    in a clone: what tuiorch must leave on main."""
    clone = tmp_path / "by-git"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "config", "user.name", "Test User")
    git(clone, "config", "user.email", "test@example.com")
    git(clone, "switch", "-q", "-c", "work")
    subprocess.run([sys.executable, str(script), str(clone)], check=True)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "work")
    git(clone, "switch", "-q", "main")
    git(clone, "merge", "-q", "--no-ff", "-m", "merge", "work")
    return git(clone, "rev-parse", "HEAD^{tree}")


def test_a_file_the_user_touched_without_changing_it_does_not_hold_the_merge(tmp_path: Path) -> None:
    # An editor saving a file unchanged, a build tool, `git stash && git stash pop`: only the stat data
    # differs from the index. `git merge` refreshes the index first and merges; so must tuiorch.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    expected = merged_by_git(repo, tmp_path, tmp_path / "agent.py")
    time.sleep(1.1)  # a new mtime in whole seconds too, whatever the file system keeps
    os.utime(repo / "a.txt")

    code, events, err = run_tuiorch(repo, timeout=30)

    held = [e["reason"] for e in events if e["event"] == "merge_blocked"]
    assert code == 0, (held, err)
    assert held == []
    assert git(repo, "rev-parse", "main^{tree}") == expected
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "a.txt").read_text() == "a changed\n"


#: An agent that commits its own work with git in its worktree.
COMMITS_ITS_WORK = """\
import pathlib, subprocess, sys
w = pathlib.Path(sys.argv[1])
(w / "new.txt").write_text("new\\n")
subprocess.run(["git", "add", "-A"], cwd=w, check=True)
subprocess.run(["git", "commit", "-q", "-m", "agent's commit"], cwd=w, check=True)
"""


def test_git_dir_of_this_repository_in_the_environment_does_not_reach_the_agents_git(tmp_path: Path) -> None:
    # GIT_DIR exported (git sets it for a shell alias where .git is a file): an agent's `git commit` in
    # its worktree would otherwise write to main directly, behind the checkout's back.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, COMMITS_ITS_WORK)
    before = git(repo, "rev-parse", "main")

    code, _, err = run_tuiorch(repo, env={**os.environ, "GIT_DIR": str(repo / ".git")})

    assert code == 0, err
    first_parent = git(repo, "log", "--first-parent", "--format=%s", f"{before}..main").splitlines()
    assert first_parent == ["feat: Edit"]  # the merge, not the agent's commit straight on main
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "new.txt").read_text() == "new\n"


def test_git_dir_of_another_repository_in_the_environment_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    other = make_repo(tmp_path / "other")
    project(repo, tmp_path, COMMITS_ITS_WORK)
    env = {**os.environ, "GIT_DIR": str(other / ".git"), "GIT_WORK_TREE": str(other)}

    code, events, err = run_tuiorch(repo, env=env)

    assert code == 2 and events == []
    assert f"GIT_DIR={other / '.git'}" in err and f"GIT_WORK_TREE={other}" in err and "unset" in err
    assert "Traceback" not in err
    assert git(other, "log", "--format=%s") == "initial"
    assert git(repo, "branch", "--list", "task-*") == ""


def test_use_config_only_without_an_identity_is_refused_naming_the_setting(tmp_path: Path) -> None:
    # The user asked git never to guess who commits: commits signed "tuiorch <tuiorch@localhost>" on main
    # would be exactly that guess.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "user.useConfigOnly", "true")
    before = git(repo, "rev-parse", "main")

    code, events, err = run_tuiorch(repo)

    assert code == 2 and events == []
    assert "user.useConfigOnly = true" in err and "git config user.email" in err and "Traceback" not in err
    assert git(repo, "rev-parse", "main") == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_repository_of_another_user_is_refused_naming_safe_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    subprocess.run(["chown", "-R", "12345:12345", str(repo)], check=True)

    code, events, err = run_tuiorch(repo)

    assert code == 2 and events == []
    assert f"git config --global --add safe.directory {repo}" in err and "Traceback" not in err


def test_a_custom_merge_driver_is_refused_naming_the_attribute_and_driver(tmp_path: Path) -> None:
    # `git merge` keeps main's a.txt (the driver `true` says "ours"); libgit2 would merge the texts.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".gitattributes": "*.md text\na.txt merge=keep-ours\n"})
    git(repo, "config", "merge.keep-ours.driver", "true")
    project(repo, tmp_path, EDIT_AND_ADD)
    before = git(repo, "rev-parse", "main")

    code, events, err = run_tuiorch(repo)

    assert code == 2 and events == []
    assert ".gitattributes:2" in err and "merge.keep-ours.driver = true" in err and "Traceback" not in err
    assert git(repo, "rev-parse", "main") == before


def test_built_in_merge_drivers_and_undefined_ones_run_as_git_merges(tmp_path: Path) -> None:
    # union and an attribute naming no configured driver are git's built-in merges, which libgit2 has too.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".gitattributes": "a.txt merge=union\n*.txt merge=nothing-configured\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    expected = merged_by_git(repo, tmp_path, tmp_path / "agent.py")

    code, _, err = run_tuiorch(repo)

    assert code == 0, err
    assert git(repo, "rev-parse", "main^{tree}") == expected


def run_until_blocked(repo: Path, timeout: float = 60) -> dict:
    """Run tuiorch until its merge is held (the first merge_blocked event), then stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "merge_blocked":
                return event
            assert time.monotonic() < deadline, "no merge_blocked event"
        raise AssertionError(f"the run ended (exit {proc.wait()}) without holding its merge")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize(("flag", "letter"), [("skip-worktree", "S"), ("assume-unchanged", "h")])
def test_a_change_hidden_from_git_status_is_kept_and_named_with_its_flag(tmp_path: Path, flag: str, letter: str) -> None:
    # A local config file hidden with `git update-index --skip-worktree`: git merge refuses to overwrite
    # it, and so does tuiorch; "commit or stash them" alone would puzzle a user whose git status is clean.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    git(repo, "update-index", f"--{flag}", "a.txt")
    (repo / "a.txt").write_text("local setting\n")
    before = git(repo, "rev-parse", "main")

    blocked = run_until_blocked(repo)

    assert blocked["paths"] == ["a.txt"]
    assert f"a.txt is marked {flag}" in blocked["reason"] and f"git update-index --no-{flag} a.txt" in blocked["reason"]
    assert (repo / "a.txt").read_text() == "local setting\n"
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "ls-files", "-v", "a.txt") == f"{letter} a.txt"


#: Agents that leave their task branch or a half-done git operation behind.
LEAVES_ITS_BRANCH = {
    "detached": """\
import pathlib, subprocess, sys
w = pathlib.Path(sys.argv[1])
subprocess.run(["git", "switch", "-q", "--detach"], cwd=w, check=True)
(w / "new.txt").write_text("made on a detached HEAD\\n")
subprocess.run(["git", "add", "-A"], cwd=w, check=True)
subprocess.run(["git", "commit", "-q", "-m", "detached work"], cwd=w, check=True)
""",
    "conflicted merge": """\
import pathlib, subprocess, sys
w = pathlib.Path(sys.argv[1])
run = lambda *a: subprocess.run(["git", *a], cwd=w, check=True)
run("switch", "-q", "-c", "side")
(w / "a.txt").write_text("side\\n")
run("commit", "-q", "-a", "-m", "side")
run("switch", "-q", "-")
(w / "a.txt").write_text("mine\\n")
run("commit", "-q", "-a", "-m", "mine")
subprocess.run(["git", "merge", "-q", "side"], cwd=w)  # conflicts, left as is
""",
    "stopped rebase": """\
import pathlib, subprocess, sys
w = pathlib.Path(sys.argv[1])
run = lambda *a: subprocess.run(["git", *a], cwd=w, check=True)
for text in ("one", "two"):
    (w / "a.txt").write_text(text + "\\n")
    run("commit", "-q", "-a", "-m", text)
run("-c", "sequence.editor=sed -i 1s/^pick/edit/", "rebase", "-q", "-i", "HEAD~2")  # stops at "one"
""",
}


def test_an_agent_on_a_detached_head_keeps_its_worktree_and_commits(tmp_path: Path) -> None:
    # Its commit is reachable only from that worktree's HEAD: removing the worktree would lose it.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, LEAVES_ITS_BRANCH["detached"])
    before = git(repo, "rev-parse", "main")

    code, events, err = run_tuiorch(repo)

    assert code == 1, err
    (failed,) = [e for e in events if e["event"] == "task_failed"]
    kept = Path(failed["reason"].rpartition("its work is kept in ")[2])
    assert "detached HEAD" in failed["reason"] and kept.is_dir()
    assert git(kept, "log", "-1", "--format=%s") == "detached work"
    assert git(repo, "rev-parse", "main") == before


@pytest.mark.parametrize(
    ("agent", "said"),
    [("conflicted merge", "a merge in progress in its worktree (conflicts in a.txt)"), ("stopped rebase", "a rebase in progress")],
)
def test_an_agents_half_done_operation_is_not_committed(tmp_path: Path, agent: str, said: str) -> None:
    # `git add -A && git commit` would conclude a merge with the markers as content, and main would get them.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, LEAVES_ITS_BRANCH[agent])
    before = git(repo, "rev-parse", "main")

    code, events, err = run_tuiorch(repo)

    assert code == 1, err
    (failed,) = [e for e in events if e["event"] == "task_failed"]
    assert said in failed["reason"]
    kept = Path(failed["reason"].rpartition("its work is kept in ")[2])
    assert kept.is_dir()
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "show", "main:a.txt") == "a"


def test_a_merge_held_in_a_linked_worktree_of_main_names_that_worktree(tmp_path: Path) -> None:
    # The run starts in the primary checkout (on another branch), whose git status is clean.
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    project(repo, tmp_path, EDIT_AND_ADD)
    git(repo, "switch", "-q", "-c", "dev")
    linked = tmp_path / "main-checkout"
    git(repo, "worktree", "add", "-q", str(linked), "main")
    (linked / "a.txt").write_text("user's edit\n")

    blocked = run_until_blocked(repo)

    assert blocked["reason"].startswith(f"main in {linked} has uncommitted changes in a.txt")
    assert (linked / "a.txt").read_text() == "user's edit\n"
    assert git(repo, "status", "--porcelain") == ""
