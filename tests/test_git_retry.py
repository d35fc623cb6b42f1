"""The one busy-ref retry loop: its rules on their own, and merges landing while other git processes
keep taking base's ref lock and moving base."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch.git import GitRepo, MergeOutcome
from tuiorch.git import merge as merge_module
from tuiorch.git.merge import retry_busy


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(merge_module.time, "sleep", slept.append)
    return slept


def test_a_busy_lock_is_waited_for_and_a_moved_base_recomputed_at_once(sleeps: list[float]) -> None:
    results: list[MergeOutcome | None] = [None, MergeOutcome("moved"), None, MergeOutcome("merged", "abc")]
    outcome = retry_busy(lambda: results.pop(0), again_if_moved=True)
    assert outcome is not None and outcome.status == "merged"
    assert len(sleeps) == 2  # once per busy lock, never after base moved


def test_a_moved_base_is_final_when_the_caller_must_recheck(sleeps: list[float]) -> None:
    outcome = retry_busy(lambda: MergeOutcome("moved"), again_if_moved=False)
    assert outcome is not None and outcome.status == "moved"  # a checked merge is not recomputed here
    assert sleeps == []


def test_the_loop_gives_up_after_its_attempts(sleeps: list[float]) -> None:
    calls: list[int] = []

    def always_busy() -> MergeOutcome | None:
        calls.append(1)
        return None

    assert retry_busy(always_busy, again_if_moved=True) is None
    assert len(calls) == merge_module._MERGE_ATTEMPTS == len(sleeps)


def _mover(repo: Path, rounds: int, landed: list[str], stop: threading.Event) -> None:
    """Another git user: commits on main with plumbing, moving the ref by git's own compare-and-swap."""
    for n in range(rounds):
        if stop.is_set():
            return
        old = git(repo, "rev-parse", "main")
        tree = git(repo, "rev-parse", f"{old}^{{tree}}")
        new = git(repo, "commit-tree", tree, "-p", old, "-m", f"user {n}")
        moved = subprocess.run(["git", "update-ref", "refs/heads/main", new, old], cwd=repo, capture_output=True)
        if moved.returncode == 0:
            landed.append(new)


def _merge_until_final(gr: GitRepo, branch: str) -> MergeOutcome:
    """As the engine does: a merge blocked because base kept moving is tried again later."""
    for _ in range(50):
        outcome = gr.merge(branch, "main", f"merge {branch}")
        if outcome.status != "blocked":
            return outcome
    return outcome


def test_merges_land_while_another_git_keeps_moving_base(tmp_path: Path) -> None:
    """Real contention: git update-ref takes refs/heads/main.lock and moves main between our compare and
    our swap. Every merge lands, and no commit of either side is lost."""
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "switch", "-q", "-c", "side")  # main checked out nowhere: only the ref is contended
    gr = GitRepo(repo)
    tips = []
    for n in range(6):
        branch = f"task-{n}"
        git(repo, "branch", branch, "main")
        wt = tmp_path / branch
        git(repo, "worktree", "add", "-q", str(wt), branch)
        (wt / f"t{n}.txt").write_text(f"{n}\n")
        git(wt, "add", "-A")
        git(wt, "commit", "-q", "-m", branch)
        tips.append(git(wt, "rev-parse", "HEAD"))
    landed: list[str] = []
    stop = threading.Event()
    mover = threading.Thread(target=_mover, args=(repo, 200, landed, stop))
    mover.start()
    try:
        outcomes = [_merge_until_final(gr, f"task-{n}") for n in range(6)]
    finally:
        stop.set()
        mover.join()
    assert [o.status for o in outcomes] == ["merged"] * 6, [o.message for o in outcomes]
    history = set(git(repo, "rev-list", "main").split())
    assert set(tips) <= history
    assert set(landed) <= history  # the other git's commits survived every merge
    for outcome in outcomes:
        assert outcome.commit in history


def test_a_ref_lock_held_briefly_by_another_process_is_waited_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    gr = GitRepo(repo)
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    (wt / "c.txt").write_text("c\n")
    gr.commit_leftovers(wt, "c")
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    release = threading.Timer(0.12, lock.unlink)
    release.start()
    try:
        outcome = gr.merge("task-1", "main", "m")
    finally:
        release.join()
    assert outcome.status == "merged"
    assert git(repo, "rev-parse", "main^2") == git(repo, "rev-parse", "task-1")
    assert (repo / "c.txt").read_text() == "c\n"  # the user's checkout of main came along
