"""How much work a task costs the git layer once its slot is warm: which git processes start and how
many libgit2 repositories are opened. Throughput depends on it, and a timer on a shared machine is too
noisy to notice one process more."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path

import pygit2
import pytest

from tests.conftest import make_repo
from tuiorch.git import GitRepo


def test_a_warm_slot_task_starts_three_git_processes_and_few_repository_handles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {f"d{i % 5}/f{i}.txt": f"{i}\n" for i in range(50)})
    gr = GitRepo(repo)
    slot = tmp_path / "slots" / "slot-1"

    def one_task(n: int) -> None:
        if slot.exists():
            gr.release_worktree(slot)
        gr.prepare_worktree(slot, f"task-{n}", "main")
        (slot / f"new{n}.txt").write_text("x\n")  # left uncommitted by the agent
        assert gr.commit_leftovers(slot, f"task {n}", f"task-{n}") is not None
        assert gr.merge(f"task-{n}", "main", f"merge task-{n}").status == "merged"
        gr.release_worktree(slot)
        gr.delete_branch(f"task-{n}")

    one_task(1)  # makes the slot's worktree and asks git for the identity once
    started: collections.Counter[str] = collections.Counter()
    opened: list[str] = []
    run, repository = subprocess.run, pygit2.Repository

    def counting_run(args: list[str], *rest: object, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        if args[0] == "git":
            started[args[3] if args[1] == "-C" else args[1]] += 1
        return run(args, *rest, **kwargs)  # type: ignore[call-overload, no-any-return]

    class CountingRepository(repository):  # type: ignore[misc, valid-type]
        def __init__(self, path: str, *rest: object, **kwargs: object) -> None:
            opened.append(path)
            super().__init__(path, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    monkeypatch.setattr(pygit2, "Repository", CountingRepository)
    one_task(2)
    # git add + git commit of the leftovers; the user's checkout of main brought along by the merge
    # (read-tree -m -u; its stat data is refreshed only when git refuses). Reusing the slot and merging
    # need no git process.
    assert dict(started) == {"add": 1, "commit": 1, "read-tree": 1}
    # Every handle is on the slot's worktree: the repository itself was opened once, by GitRepo().
    assert all(Path(path).resolve() == slot.resolve() for path in opened), opened
    assert len(opened) <= 6, opened
