"""Landing a merge in the user's checkout of main, across the repository setups users really have.

Each test makes a real repository in that setup, a task branch committed with the git CLI (so the
repository's own filters store what git stores), lands it with the engine, and compares the user's
checkout with what `git merge` would have left: `git status` clean, the files git would write.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch.checkout import git_processes_in
from tuiorch.gitops import GitRepo


def task_branch(repo: Path, tmp_path: Path, name: str, change: Callable[[Path], None]) -> str:
    """Branch `name` from main with one commit made by `change` in a full (non-sparse) worktree."""
    wt = tmp_path / f"wt-{name}"
    git(repo, "worktree", "add", "-q", "-b", name, str(wt), "main")
    if git(wt, "config", "--bool", "--default", "false", "core.sparseCheckout") == "true":
        git(wt, "sparse-checkout", "disable")
    change(wt)
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", f"task {name}")
    sha = git(wt, "rev-parse", "HEAD")
    git(repo, "worktree", "remove", "--force", str(wt))
    return sha


def writes(files: dict[str, str | bytes]) -> Callable[[Path], None]:
    def change(wt: Path) -> None:
        for rel, data in files.items():
            target = wt / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data)

    return change


def land(repo: Path, branch: str) -> None:
    outcome = GitRepo(repo).merge(branch, "main", f"merge {branch}")
    assert outcome.status == "merged", outcome.message
    assert git(repo, "rev-parse", "main^2") == git(repo, "rev-parse", branch)


def clean(repo: Path) -> None:
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "repo",
        {"top.txt": "top\n", "d1/a.txt": "a\n", "d2/b.txt": "b\n", "d2/deep/c.txt": "c\n", "run.sh": "echo hi\n"},
    )


# ------------------------------------------------------------------ sparse checkouts and index formats


@pytest.mark.parametrize("sparse_index", [False, True], ids=["cone", "sparse-index"])
def test_sparse_checkout_keeps_out_of_cone_files_absent_and_never_deletes_them(
    layered: Path, tmp_path: Path, sparse_index: bool
) -> None:
    repo = layered
    git(repo, "sparse-checkout", "init", "--cone", *(["--sparse-index"] if sparse_index else ["--no-sparse-index"]))
    git(repo, "sparse-checkout", "set", "d1")
    assert not (repo / "d2").exists()
    files_before = set(git(repo, "ls-tree", "-r", "--name-only", "main").split())
    branch = task_branch(
        repo, tmp_path, "t1", writes({"d1/a.txt": "a by task\n", "d2/b.txt": "b by task\n", "d2/new.txt": "n\n"})
    )
    land(repo, "t1")
    clean(repo)
    assert (repo / "d1/a.txt").read_text() == "a by task\n"
    assert not (repo / "d2").exists()  # out of the cone: stays absent, like git merge leaves it
    assert set(git(repo, "ls-tree", "-r", "--name-only", "main").split()) == files_before | {"d2/new.txt"}
    assert git(repo, "show", "main:d2/b.txt") == "b by task"
    assert git(repo, "rev-parse", "main^2") == branch
    if sparse_index:
        assert "d2/" in git(repo, "ls-files", "--sparse").split()  # the index is still a sparse index
    else:
        assert {line for line in git(repo, "ls-files", "-t").splitlines() if "d2/" in line} == {
            "S d2/b.txt",
            "S d2/deep/c.txt",
            "S d2/new.txt",
        }


def test_split_index_is_read_and_written_by_git(layered: Path, tmp_path: Path) -> None:
    repo = layered
    git(repo, "config", "core.splitIndex", "true")
    git(repo, "update-index", "--split-index")
    task_branch(repo, tmp_path, "t1", writes({"d1/a.txt": "a by task\n", "d1/new.txt": "new\n"}))
    land(repo, "t1")
    clean(repo)
    assert (repo / "d1/new.txt").read_text() == "new\n"
    assert list((repo / ".git").glob("sharedindex.*"))
    # The user's edit to a file the next merge touches still blocks it, with the file named.
    task_branch(repo, tmp_path, "t2", writes({"top.txt": "top by task\n"}))
    (repo / "top.txt").write_text("the user's edit\n")
    outcome = GitRepo(repo).merge("t2", "main", "merge t2")
    assert outcome.status == "blocked" and outcome.paths == ("top.txt",)
    assert (repo / "top.txt").read_text() == "the user's edit\n"


# ------------------------------------------------------------------ modes, symlinks, filters


def test_a_tasks_chmod_reaches_mains_checkout(layered: Path, tmp_path: Path) -> None:
    repo = layered
    task_branch(repo, tmp_path, "t1", lambda wt: (wt / "run.sh").chmod(0o755))
    land(repo, "t1")
    clean(repo)
    assert (repo / "run.sh").stat().st_mode & stat.S_IXUSR
    assert git(repo, "ls-files", "-s", "run.sh").startswith("100755")


def test_a_symlink_lands_as_a_symlink(layered: Path, tmp_path: Path) -> None:
    repo = layered
    task_branch(repo, tmp_path, "t1", lambda wt: (wt / "link").symlink_to("d1/a.txt"))
    land(repo, "t1")
    clean(repo)
    assert (repo / "link").is_symlink() and os.readlink(repo / "link") == "d1/a.txt"


def test_eol_attributes_are_applied_to_mains_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".gitattributes": "*.txt text eol=crlf\n", "a.txt": "one\ntwo\n"})
    assert (repo / "a.txt").read_bytes() == b"one\ntwo\n"  # written before the attribute was committed
    git(repo, "rm", "-q", "--cached", "a.txt")
    git(repo, "checkout", "--", ".")
    (repo / "a.txt").unlink()
    git(repo, "checkout", "HEAD", "--", "a.txt")
    assert (repo / "a.txt").read_bytes() == b"one\r\ntwo\r\n"
    task_branch(repo, tmp_path, "t1", writes({"a.txt": b"one\r\ntwo\r\nthree\r\n", "b.txt": b"b\r\n"}))
    assert git(repo, "cat-file", "blob", "t1:a.txt") == "one\ntwo\nthree"  # stored normalised
    land(repo, "t1")
    clean(repo)
    assert (repo / "a.txt").read_bytes() == b"one\r\ntwo\r\nthree\r\n"
    assert (repo / "b.txt").read_bytes() == b"b\r\n"


def test_core_autocrlf_is_honoured(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "one\n"})
    git(repo, "config", "core.autocrlf", "true")
    task_branch(repo, tmp_path, "t1", writes({"new.txt": b"x\r\ny\r\n"}))
    land(repo, "t1")
    clean(repo)
    assert (repo / "new.txt").read_bytes() == b"x\r\ny\r\n"


def test_ident_is_expanded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".gitattributes": "*.c ident\n", "README.md": "r\n"})
    task_branch(repo, tmp_path, "t1", writes({"x.c": "/* $Id$ */\n"}))
    land(repo, "t1")
    clean(repo)
    blob = git(repo, "rev-parse", "main:x.c")
    assert (repo / "x.c").read_text() == f"/* $Id: {blob} $ */\n"


def _lfs_available() -> bool:
    if shutil.which("git-lfs"):
        return True
    if os.environ.get("CI"):
        pytest.fail("git-lfs is not installed (.ci/run installs it)")
    pytest.skip("git-lfs is not installed")
    return False


def test_git_lfs_files_land_as_files_not_pointers(tmp_path: Path) -> None:
    _lfs_available()
    repo = make_repo(tmp_path / "repo", {"README.md": "r\n"})
    git(repo, "lfs", "install", "--local")
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "track bin with lfs")
    payload = bytes(range(256)) * 4096  # 1 MiB
    task_branch(repo, tmp_path, "t1", writes({"big.bin": payload}))
    assert git(repo, "cat-file", "blob", "t1:big.bin").startswith("version https://git-lfs")
    land(repo, "t1")
    clean(repo)
    assert (repo / "big.bin").read_bytes() == payload


# ------------------------------------------------------------------ the user's own git operations


def _conflicting_side(repo: Path) -> None:
    """Branch `side` and main both change top.txt."""
    git(repo, "branch", "side")
    (repo / "top.txt").write_text("main's top\n")
    git(repo, "commit", "-qam", "main changes top")
    git(repo, "switch", "-q", "side")
    (repo / "top.txt").write_text("side's top\n")
    git(repo, "commit", "-qam", "side changes top")
    git(repo, "switch", "-q", "main")


def _start_rebase(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "one more")
    env = dict(os.environ, GIT_SEQUENCE_EDITOR="sed -i 1s/^pick/edit/")
    subprocess.run(["git", "rebase", "-q", "-i", "HEAD~1"], cwd=repo, env=env, check=True, capture_output=True)
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached while it runs


def _start_conflicting(*args: str) -> Callable[[Path], None]:
    def start(repo: Path) -> None:
        _conflicting_side(repo)
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        assert done.returncode != 0, done.stdout  # stopped on the conflict, the operation in progress

    return start


def _start_am(repo: Path) -> None:
    _conflicting_side(repo)
    patch = git(repo, "format-patch", "-1", "side", "--stdout")
    done = subprocess.run(["git", "am"], cwd=repo, input=patch + "\n", capture_output=True, text=True)
    assert done.returncode != 0


def _start_bisect(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "commit", "-q", "--allow-empty", "-m", "third")
    git(repo, "bisect", "start", "main", "main~2")


OPERATIONS = {
    "rebase": (_start_rebase, ["rebase", "--continue"], "rebase"),
    "merge": (_start_conflicting("merge", "side"), ["merge", "--abort"], "merge"),
    "cherry-pick": (_start_conflicting("cherry-pick", "side"), ["cherry-pick", "--abort"], "cherry-pick"),
    "revert": (_start_conflicting("revert", "--no-edit", "main~1"), ["revert", "--abort"], "revert"),
    "am": (_start_am, ["am", "--abort"], "git am"),
    "bisect": (_start_bisect, ["bisect", "reset"], "bisect"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_main_does_not_move_during_the_users_operation_and_lands_after(
    layered: Path, tmp_path: Path, operation: str
) -> None:
    repo = layered
    start, finish, named = OPERATIONS[operation]
    task_branch(repo, tmp_path, "t1", writes({"d1/new.txt": "from the task\n"}))
    start(repo)
    main_before = git(repo, "rev-parse", "refs/heads/main")
    outcome = GitRepo(repo).merge("t1", "main", "merge t1")
    assert outcome.status == "blocked"
    assert f"middle of a {named}" in outcome.message and "tuiorch retries" in outcome.message
    assert git(repo, "rev-parse", "refs/heads/main") == main_before
    assert not (repo / "d1/new.txt").exists()
    # The user finishes their operation the way they meant to; git does not trip over tuiorch.
    done = subprocess.run(["git", *finish], cwd=repo, capture_output=True, text=True, env=dict(os.environ, GIT_EDITOR="true"))
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    land(repo, "t1")
    assert (repo / "d1/new.txt").read_text() == "from the task\n"
    clean(repo)


# ------------------------------------------------------------------ a user switching branches meanwhile


def test_rapid_branch_switching_never_receives_a_tasks_files(layered: Path, tmp_path: Path) -> None:
    """The user flips between main and another branch while 12 merges land: the other branch's
    checkout never holds a task's file, and main's index never falls behind main."""
    repo = layered
    git(repo, "switch", "-q", "-c", "other")
    (repo / "top.txt").write_text("top on the other branch\n")
    git(repo, "commit", "-qam", "other branch")
    git(repo, "switch", "-q", "main")
    branches = [
        task_branch(repo, tmp_path, f"t{i}", writes({f"d1/task{i}.txt": f"task {i}\n", f"d2/more{i}.txt": "m\n"}))
        for i in range(12)
    ]
    assert len(branches) == 12
    stop = threading.Event()
    seen_on_other: list[str] = []
    blocked: list[str] = []
    refused: list[str] = []
    switches = 0

    def user() -> None:
        nonlocal switches
        while not stop.is_set():
            for target in ("other", "main"):
                time.sleep(0.02)  # faster than any person at a keyboard
                done = subprocess.run(["git", "switch", "-q", target], cwd=repo, capture_output=True, text=True)
                if done.returncode != 0:
                    refused.append(done.stderr)
                    continue  # another git (tuiorch) held the index: git refuses, nothing changed
                switches += 1
                if target == "other":
                    status = git(repo, "status", "--porcelain", "--untracked-files=all")
                    if status:
                        seen_on_other.append(status)

    flipper = threading.Thread(target=user)
    flipper.start()
    gr = GitRepo(repo)
    try:
        outcomes = []
        for i in range(12):
            deadline = time.monotonic() + 20
            while True:
                outcome = gr.merge(f"t{i}", "main", f"merge t{i}")
                if outcome.status != "blocked" or time.monotonic() > deadline:
                    break
                blocked.append(outcome.message)
                time.sleep(0.01)
            outcomes.append(outcome.status)
            time.sleep(0.05)  # merges land one after another, switches go on in between
    finally:
        stop.set()
        flipper.join()
    assert outcomes == ["merged"] * 12, blocked[-3:]
    assert switches > 10, refused[-3:]
    assert seen_on_other == []
    git(repo, "switch", "-q", "main")
    clean(repo)
    assert git(repo, "diff", "--cached", "--quiet", "HEAD") == ""
    assert sorted(p.name for p in (repo / "d1").iterdir()) == sorted(["a.txt"] + [f"task{i}.txt" for i in range(12)])


# ------------------------------------------------------------------ the summary after main was rewritten


@pytest.mark.parametrize("rewrite", ["amend", "rebase"])
def test_the_summary_counts_mains_commits_after_the_user_rewrites_main(tmp_path: Path, rewrite: str) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "r\n"})
    (repo / "tuiorch.toml").write_text('workers = 1\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n')
    (repo / "TASKS.md").write_text("## Task 1: Slow\nsleep: 1.5\n```write slow.txt\nslow\n```\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add tasks")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["event"] == "task_started":
                break
        if rewrite == "amend":
            git(repo, "commit", "-q", "--amend", "-m", "add tasks (reworded)")
        else:  # rewrite the run's starting commit by rebasing main's last two commits
            (repo / "user.txt").write_text("u\n")
            git(repo, "add", "user.txt")
            git(repo, "commit", "-q", "-m", "user's commit")
            env = dict(os.environ, GIT_SEQUENCE_EDITOR="sed -i 1s/^pick/reword/", GIT_EDITOR="sed -i '1s/$/ (reworded)/'")
            done = subprocess.run(["git", "rebase", "-q", "-i", "HEAD~2"], cwd=repo, env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr + git(repo, "status")
        events = [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finished = [e for e in events if e["event"] == "run_finished"][0]
    subjects = [c["subject"] for c in finished["commits"]]
    assert subjects[0] == "add tasks (reworded)"
    if rewrite == "rebase":
        assert subjects[1] == "user's commit"
    assert subjects[-1].endswith("Slow") and len(subjects) == (3 if rewrite == "rebase" else 2)
    assert git(repo, "show", "main:slow.txt") == "slow"
    clean(repo)


def test_git_commands_running_in_the_checkout_are_found_but_not_those_in_nested_worktrees(
    layered: Path, tmp_path: Path
) -> None:
    """What the lock is held for after main moves: git commands already running in the user's checkout."""
    repo = layered
    nested = repo / "slots" / "one"
    git(repo, "worktree", "add", "-q", "--detach", str(nested))
    waiting = [
        subprocess.Popen(["git", "cat-file", "--batch"], cwd=where, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        for where in (repo / "d1", nested)
    ]
    try:
        found = git_processes_in([repo.resolve()], exclude=[nested.resolve()])
        assert found is not None and waiting[0].pid in found and waiting[1].pid not in found
    finally:
        for proc in waiting:
            proc.communicate(b"")
    assert git_processes_in([repo.resolve()], exclude=[nested.resolve()]) == set()
