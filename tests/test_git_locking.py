"""One locking style: every public method of the git nouns holds the repository lock while it uses
the shared libgit2 handle, so the engine's threads never use it at the same time; long work on handles
of its own (a slot's checkout, an agent's leftovers) runs without it, so merges go on meanwhile."""

from __future__ import annotations

import inspect
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import make_repo
from tuiorch.git import GitRepo
from tuiorch.git import slots as slots_module
from tuiorch.git import worktrees as worktrees_module
from tuiorch.git.branches import Branches
from tuiorch.git.conflicts import Conflicts
from tuiorch.git.leftovers import Leftovers
from tuiorch.git.merge import Merges
from tuiorch.git.refs import Refs
from tuiorch.git.worktrees import Worktrees

# Public methods that take the lock in steps around work done outside it, or run inside a locked one.
SPLIT_OR_INNER = {
    (Worktrees, "prepare"),  # `git worktree add` and the checkout run outside the lock
    (Worktrees, "remove"),  # the renamed directory is deleted outside the lock
    (Branches, "point"),  # called by Worktrees under their lock
}


# Public methods that use only handles they open themselves (@own_handles).
OWN_HANDLES = {(Leftovers, "commit")}

# Public methods that use no libgit2 handle at all (a list kept under a lock of its own).
NO_HANDLE = {(Worktrees, "take_rescued")}


@pytest.mark.parametrize("noun", [Refs, Branches, Worktrees, Leftovers, Merges, Conflicts])
def test_every_public_method_takes_the_lock(noun: type) -> None:
    for name, method in inspect.getmembers(noun, inspect.isfunction):
        if name.startswith("_") or (noun, name) in SPLIT_OR_INNER | NO_HANDLE:
            continue
        assert hasattr(method, "__wrapped__"), f"{noun.__name__}.{name} is neither @locked nor @own_handles"
        marked = getattr(method, "own_handles", False)
        assert marked == ((noun, name) in OWN_HANDLES), f"{noun.__name__}.{name}: @own_handles is {marked}"


def test_a_call_waits_while_another_thread_holds_the_repository(tmp_path: Path) -> None:
    gr = GitRepo(make_repo(tmp_path / "repo"))
    done = threading.Event()
    answers: list[tuple[str, ...]] = []

    def ask() -> None:
        answers.append(gr.test_merge("main", "main"))
        done.set()

    with gr.repo.lock:  # e.g. a merge under way on another thread
        asker = threading.Thread(target=ask)
        asker.start()
        assert not done.wait(0.2)
    asker.join(5)
    assert done.is_set() and answers == [()]


def test_queries_on_branches_do_not_wait_for_a_merge(tmp_path: Path) -> None:
    """Tips and history are read on a handle of their own: an agent's result is collected, and the next
    task's branch looked up, while another task's merge holds the repository."""
    repo = make_repo(tmp_path / "repo")
    gr = GitRepo(repo)
    answers: list[str | None] = []
    with gr.repo.lock:  # e.g. a merge under way on another thread
        asker = threading.Thread(target=lambda: answers.extend([gr.tip("main"), gr.branch_tip("nope")]))
        asker.start()
        asker.join(5)
        main = subprocess.run(["git", "rev-parse", "main"], cwd=repo, capture_output=True, text=True).stdout.strip()
        assert answers == [main, None]
    # What the repository's own handle writes, the queries see at once.
    gr.branches.point("task-1", "main", gr.repo.commit_of("main"), None)
    assert gr.branch_tip("task-1") == answers[0]


def test_a_new_worktree_is_checked_out_outside_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slot's checkout (seconds on a big repository) never holds up merges and the other slots."""
    gr = GitRepo(make_repo(tmp_path / "repo"))
    held_during_checkout: list[bool] = []
    add = Worktrees._add

    def spying_add(self: Worktrees, path: Path, branch: str) -> None:
        held_during_checkout.append(self.repo.lock.locked())
        add(self, path, branch)

    monkeypatch.setattr(Worktrees, "_add", spying_add)
    gr.prepare_worktree(tmp_path / "wt", "task-1", "main")
    assert held_during_checkout == [False]
    assert (tmp_path / "wt" / "README.md").exists()
    assert not gr.repo.lock.locked()


def test_a_removed_worktree_is_deleted_outside_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a big checkout (seconds) never holds up merges and the other slots."""
    gr = GitRepo(make_repo(tmp_path / "repo"))
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    held_while_deleting: list[bool] = []
    delete_tree = worktrees_module._delete_tree

    def spying_delete(path: Path) -> None:
        if ".removing-" in Path(path).name:
            held_while_deleting.append(gr.repo.lock.locked())
        delete_tree(path)

    monkeypatch.setattr(worktrees_module, "_delete_tree", spying_delete)
    gr.remove_worktree(wt)
    assert held_while_deleting == [False]
    assert not wt.exists() and not any(tmp_path.glob(".wt.removing-*"))
    listed = subprocess.run(["git", "worktree", "list"], cwd=gr.root, capture_output=True, text=True).stdout
    assert str(wt) not in listed


def test_a_reused_slot_is_switched_outside_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gr = GitRepo(make_repo(tmp_path / "repo"))
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    gr.release_worktree(wt)
    gr.delete_branch("task-1", force=True)
    held_during_switch: list[bool] = []
    run = slots_module.SlotSwitch.run

    def spying_run(self: slots_module.SlotSwitch) -> None:
        held_during_switch.append(gr.repo.lock.locked())
        run(self)

    monkeypatch.setattr(slots_module.SlotSwitch, "run", spying_run)
    (wt / "junk.txt").write_text("left by a killed run\n")  # saved under the lock, then cleaned without it
    gr.prepare_worktree(wt, "task-2", "main")
    assert held_during_switch == [False]
    (rescued,) = gr.take_rescued()
    assert subprocess.run(["git", "show", f"{rescued}:junk.txt"], cwd=gr.root, capture_output=True, text=True).stdout == (
        "left by a killed run\n"
    )
    assert subprocess.run(["git", "branch", "--show-current"], cwd=wt, capture_output=True, text=True).stdout == "task-2\n"
    assert not (wt / "junk.txt").exists()


def test_an_agents_leftovers_are_committed_while_a_merge_holds_the_repository(tmp_path: Path) -> None:
    gr = GitRepo(make_repo(tmp_path / "repo"))
    wt = tmp_path / "wt"
    gr.prepare_worktree(wt, "task-1", "main")
    (wt / "new.txt").write_text("agent's work\n")
    done = threading.Event()
    commits: list[str | None] = []

    def commit() -> None:
        commits.append(gr.commit_leftovers(wt, "task 1", "task-1"))
        done.set()

    with gr.repo.lock:  # e.g. another task's merge under way
        committer = threading.Thread(target=commit)
        committer.start()
        assert done.wait(30)
    committer.join()
    assert commits[0] == gr.branch_tip("task-1")
