"""gitops against real repositories: worktrees, branches, the --no-ff merge and its guarantees."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch.checkout import Checkout, IndexUpdate, Refused
from tuiorch.gitops import (
    IDENTITY_FALLBACK,
    GitError,
    GitRepo,
    MergeOutcome,
    PreparedMerge,
)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def commit_files(
    root: Path, files: dict[str, str], message: str = "change", delete: tuple[str, ...] = ()
) -> str:
    """Commit `files` (and deletions) with the CLI in the working tree `root`; returns the sha."""
    write(root, files)
    for rel in delete:
        git(root, "rm", "-q", rel)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def parents(root: Path, rev: str) -> list[str]:
    return git(root, "rev-list", "--parents", "-n", "1", rev).split()[1:]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# demo\n", "a.txt": "a1\na2\na3\n", "b.txt": "b1\n"})


@pytest.fixture
def gr(repo: Path) -> GitRepo:
    return GitRepo(repo)


def task(gr: GitRepo, tmp_path: Path, name: str, files: dict[str, str], delete: tuple[str, ...] = ()) -> Path:
    """A task worktree on branch `name` with one commit."""
    wt = tmp_path / "wts" / name
    gr.prepare_worktree(wt, name, "main")
    commit_files(wt, files, f"task {name}", delete)
    return wt


# ------------------------------------------------------------------ opening


def test_opens_from_a_subdirectory_and_names_root_and_git_dir(repo: Path) -> None:
    (repo / "sub" / "deeper").mkdir(parents=True)
    opened = GitRepo(repo / "sub" / "deeper")
    assert opened.root == repo.resolve()
    assert opened.git_dir == (repo / ".git").resolve()
    assert opened.tip("main") == git(repo, "rev-parse", "main")


def test_clear_errors_for_not_a_repo_bare_and_empty(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not inside a git repository"):
        GitRepo(plain)
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    with pytest.raises(GitError, match="bare repository"):
        GitRepo(tmp_path / "bare.git")
    git(tmp_path, "init", "-q", "-b", "main", "empty")
    with pytest.raises(GitError, match="no commits yet"):
        GitRepo(tmp_path / "empty")
    with pytest.raises(GitError, match="does not exist"):
        GitRepo(tmp_path / "missing")


def test_detached_head_is_fine(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    assert GitRepo(repo).tip("main") == git(repo, "rev-parse", "HEAD")


def test_git_dir_of_a_linked_worktree_is_the_main_repos(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "linked"))
    opened = GitRepo(tmp_path / "linked")
    assert opened.git_dir == (repo / ".git").resolve()
    assert opened.root == (tmp_path / "linked").resolve()


def test_signature_uses_repo_identity_else_fallback(repo: Path) -> None:
    sig = GitRepo(repo).signature()
    assert (sig.name, sig.email) == ("Test User", "test@example.com")
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    sig = GitRepo(repo).signature()
    assert (sig.name, sig.email) == IDENTITY_FALLBACK


def test_unknown_branch_is_a_clear_error(gr: GitRepo) -> None:
    with pytest.raises(GitError, match="branch 'nope' does not exist"):
        gr.tip("nope")


# --------------------------------------------------------------- worktrees


def test_prepare_worktree_creates_branch_at_base_and_worktree(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "deep" / "parents" / "slot-1"
    base_sha = gr.prepare_worktree(wt, "task-1", "main")
    assert base_sha == git(repo, "rev-parse", "main")
    assert git(repo, "rev-parse", "task-1") == base_sha
    assert git(wt, "symbolic-ref", "HEAD") == "refs/heads/task-1"
    assert git(wt, "status", "--porcelain") == ""
    assert (wt / "a.txt").read_text() == "a1\na2\na3\n"
    assert f"{wt} " in git(repo, "worktree", "list")


def test_stale_branch_is_moved_to_base_tip(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    old = git(repo, "rev-parse", "main")
    git(repo, "branch", "task-1")
    new = commit_files(repo, {"c.txt": "c\n"})
    gr.prepare_worktree(tmp_path / "slot", "task-1", "main")
    assert git(repo, "rev-parse", "task-1") == new != old


def test_branch_with_unmerged_commits_is_refused(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "task-1")
    commit_files(repo, {"c.txt": "work\n"})
    git(repo, "checkout", "-q", "main")
    with pytest.raises(GitError, match=r"branch 'task-1'.*tuiorch clean --force"):
        gr.prepare_worktree(tmp_path / "slot", "task-1", "main")
    assert not (tmp_path / "slot").exists()


def test_existing_foreign_path_is_refused(gr: GitRepo, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("mine")
    with pytest.raises(GitError, match="not a tuiorch worktree"):
        gr.prepare_worktree(foreign, "task-1", "main")
    assert (foreign / "precious.txt").read_text() == "mine"


def test_warm_slot_reuse_cleans_except_keep_and_writes_only_changes(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    write(repo, {".gitignore": "*.log\n.venv/\nbuild/\ncache/\n"})
    commit_files(repo, {})
    slot = tmp_path / "slot"
    gr.prepare_worktree(slot, "task-1", "main")
    commit_files(slot, {"a.txt": "task one\n", "new.txt": "n\n"})
    assert gr.merge("task-1", "main", "merge task-1").status == "merged"
    gr.release_worktree(slot)
    gr.delete_branch("task-1")
    write(
        slot,
        {
            "x.log": "ignored\n",
            "build/out.o": "ignored dir\n",
            ".venv/bin/python": "kept\n",
            "cache/keep-me/data": "kept nested\n",
            "cache/drop-me": "dropped\n",
        },
    )
    readme_inode = (slot / "README.md").stat().st_ino
    base_sha = gr.prepare_worktree(slot, "task-2", "main", keep=[".venv", "./cache/keep-me/"])
    assert base_sha == git(repo, "rev-parse", "main")
    assert git(slot, "symbolic-ref", "HEAD") == "refs/heads/task-2"
    assert (slot / "a.txt").read_text() == "task one\n"
    for gone in ("x.log", "build", "cache/drop-me"):
        assert not (slot / gone).exists(), gone
    assert (slot / ".venv/bin/python").read_text() == "kept\n"
    assert (slot / "cache/keep-me/data").read_text() == "kept nested\n"
    assert (slot / ".git").is_file()
    assert (slot / "README.md").stat().st_ino == readme_inode  # untouched file not rewritten
    assert git(slot, "status", "--porcelain", "--untracked-files=all") == ""


def test_warm_slot_holding_uncommitted_work_saves_it_before_reuse(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    slot = task(gr, tmp_path, "task-1", {"a.txt": "task one\n"})
    gr.release_worktree(slot)
    write(slot, {"b.txt": "someone's edit\n", "junk.txt": "new work\n"})
    gr.prepare_worktree(slot, "task-2", "main")
    [rescued] = gr.take_rescued()
    assert git(repo, "show", f"{rescued}:b.txt") == "someone's edit"
    assert git(repo, "show", f"{rescued}:junk.txt") == "new work"
    assert (slot / "b.txt").read_text() == "b1\n"


def test_files_a_killed_switch_left_with_the_branchs_content_are_not_rescued(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    slot = task(gr, tmp_path, "task-1", {"a.txt": "task one\n"})
    assert gr.merge("task-1", "main", "merge task-1").status == "merged"
    commit_files(repo, {"c.txt": "on main\n"})
    gr.release_worktree(slot)
    gr.delete_branch("task-1")
    # What a switch to a branch at main's tip leaves when killed before HEAD moves: main's files.
    write(slot, {"c.txt": "on main\n"})
    gr.prepare_worktree(slot, "task-2", "main")
    assert gr.take_rescued() == []
    assert git(slot, "status", "--porcelain") == ""


def test_reuse_drops_an_abandoned_manual_merge(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    slot = task(gr, tmp_path, "task-1", {"a.txt": "task\n"})
    commit_files(repo, {"a.txt": "main\n"})
    gr.start_manual_merge(slot, "main")
    assert (slot / "a.txt").read_text().startswith("<<<<<<<")
    gr.release_worktree(slot)
    gr.delete_branch("task-1", force=True)
    gr.prepare_worktree(slot, "task-2", "main")
    assert git(slot, "status", "--porcelain") == ""
    assert (slot / "a.txt").read_text() == "main\n"
    assert not list(Path(git(slot, "rev-parse", "--git-dir")).glob("MERGE_HEAD"))


def test_nested_worktree_is_excluded_from_main_status(gr: GitRepo, repo: Path) -> None:
    (repo / ".git" / "info" / "exclude").write_text("# user's own\n*.bak")  # no final newline
    gr.prepare_worktree(repo / ".worktrees" / "slot-1", "task-1", "main")
    gr.prepare_worktree(repo / ".worktrees" / "slot-1", "task-1", "main")
    assert git(repo, "status", "--porcelain") == ""
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude[-2:] == ["*.bak", "/.worktrees/slot-1/"]


def test_prepare_survives_stale_and_empty_admin_dirs(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    gr.prepare_worktree(tmp_path / "gone", "task-0", "main")
    shutil.rmtree(tmp_path / "gone")
    for name in ("leftover-1", "leftover-2"):
        (repo / ".git" / "worktrees" / name).mkdir(parents=True)
    gr.prepare_worktree(tmp_path / "gone", "task-0", "main")
    gr.prepare_worktree(tmp_path / "fresh", "task-1", "main")
    assert git(tmp_path / "fresh", "symbolic-ref", "HEAD") == "refs/heads/task-1"
    assert sorted(os.listdir(repo / ".git" / "worktrees")) == ["fresh", "gone"]


def test_prune_removes_vanished_worktrees_and_empty_admin_dirs(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    gr.prepare_worktree(tmp_path / "keep", "task-1", "main")
    gr.prepare_worktree(tmp_path / "vanish", "task-2", "main")
    shutil.rmtree(tmp_path / "vanish")
    (repo / ".git" / "worktrees" / "empty").mkdir()
    gr.prune()
    assert sorted(os.listdir(repo / ".git" / "worktrees")) == ["keep"]
    assert "prunable" not in git(repo, "worktree", "list")


def test_release_remove_and_delete_branch(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    with pytest.raises(GitError, match=f"checked out in {wt.resolve()}"):
        gr.delete_branch("task-1", force=True)
    gr.release_worktree(wt)
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    with pytest.raises(GitError, match="commits not in main"):
        gr.delete_branch("task-1")
    gr.delete_branch("task-1", force=True)
    assert git(repo, "branch", "--list", "task-1") == ""
    gr.delete_branch("task-1")  # already gone: nothing to do
    gr.remove_worktree(wt)
    assert not wt.exists()
    assert git(repo, "worktree", "list").count("\n") == 0


def test_delete_merged_branch_and_remove_vanished_worktree(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    assert gr.merge("task-1", "main", "merge").status == "merged"
    gr.release_worktree(wt)
    gr.delete_branch("task-1")
    shutil.rmtree(wt)
    gr.remove_worktree(wt)
    assert os.listdir(repo / ".git" / "worktrees") == []


def test_remove_refuses_a_directory_that_is_not_our_worktree(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "data").write_text("x")
    with pytest.raises(GitError, match="not removing"):
        gr.remove_worktree(other)
    with pytest.raises(GitError):
        gr.remove_worktree(repo)
    assert (other / "data").exists() and (repo / "README.md").exists()


# ----------------------------------------------------------------- commits


def test_commit_leftovers_commits_modified_new_and_deleted(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "slot"
    start = gr.prepare_worktree(wt, "task-1", "main")
    assert gr.commit_leftovers(wt, "nothing") is None
    assert not gr.has_new_commits("task-1", start)
    write(wt, {".gitignore": "*.tmp\n", "a.txt": "changed\n", "new/file.txt": "new\n", "scratch.tmp": "x"})
    (wt / "b.txt").unlink()
    sha = gr.commit_leftovers(wt, "leftovers")
    assert sha == git(repo, "rev-parse", "task-1")
    assert git(wt, "log", "-1", "--format=%s|%an|%ae") == "leftovers|Test User|test@example.com"
    assert git(wt, "status", "--porcelain") == ""
    files = git(wt, "ls-files").split()
    assert "b.txt" not in files and "new/file.txt" in files and "scratch.tmp" not in files
    assert gr.has_new_commits("task-1", start)
    assert not gr.is_merged("task-1", "main")


def test_an_agent_clis_own_files_are_never_committed_as_work(gr: GitRepo, tmp_path: Path) -> None:
    wt = tmp_path / "slot"
    start = gr.prepare_worktree(wt, "task-1", "main")
    write(wt, {".aider.chat.history.md": "chat\n", ".aider.tags.cache.v4/cache.db": "x", "sub/.aider.input.history": "y"})
    assert gr.commit_leftovers(wt, "only scratch", scratch=(".aider*",)) is None
    assert not gr.has_new_commits("task-1", start)
    write(wt, {"hello.txt": "hello\n"})
    gr.commit_leftovers(wt, "the work", scratch=(".aider*",))
    assert git(wt, "show", "--name-only", "--format=", "HEAD").split() == ["hello.txt"]


# ------------------------------------------------------------------- merge


def test_merge_is_always_two_parents_with_exact_message(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n", "a.txt": "a1\nA2\na3\n"})
    old_main = git(repo, "rev-parse", "main")
    branch_tip = git(repo, "rev-parse", "task-1")
    message = "feat: thing\n\nRefs: TASKS.md#task-1\n"
    outcome = gr.merge("task-1", "main", message)
    assert outcome.status == "merged"
    assert outcome.commit == git(repo, "rev-parse", "main")
    assert parents(repo, "main") == [old_main, branch_tip]
    assert git(repo, "log", "-1", "--format=%B", "main") == message.strip()
    assert git(repo, "log", "-1", "--format=%an <%ae>", "main") == "Test User <test@example.com>"
    # main is checked out in the primary working tree: it follows, and stays clean
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "c.txt").read_text() == "c\n"
    assert (repo / "a.txt").read_text() == "a1\nA2\na3\n"
    graph = git(repo, "log", "--graph", "--oneline", "main")
    assert graph.splitlines()[0].startswith("*   ") and "|\\" in graph
    assert gr.is_merged("task-1", "main")
    again = gr.merge("task-1", "main", message)
    assert again.status == "already" and git(repo, "rev-parse", "main") == outcome.commit


def test_merge_uses_fallback_identity(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert git(repo, "log", "-1", "--format=%an <%ae>", "main") == "tuiorch <tuiorch@localhost>"


def test_merge_deletions_and_additions_update_checked_out_main(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    task(gr, tmp_path, "task-1", {"dir/new.txt": "n\n"}, delete=("b.txt",))
    commit_files(repo, {"README.md": "# main moved\n"})
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert not (repo / "b.txt").exists()
    assert (repo / "dir/new.txt").read_text() == "n\n"
    assert (repo / "README.md").read_text() == "# main moved\n"
    assert git(repo, "status", "--porcelain") == ""


def test_conflicts_leave_main_untouched_with_kinds(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    write(repo, {"gone-on-main.txt": "x\n", "gone-on-task.txt": "y\n"})
    commit_files(repo, {})
    task(
        gr,
        tmp_path,
        "task-1",
        {"a.txt": "task\n", "both.txt": "task adds\n", "gone-on-main.txt": "task edits\n"},
        delete=("gone-on-task.txt",),
    )
    commit_files(
        repo,
        {"a.txt": "main\n", "both.txt": "main adds\n", "gone-on-task.txt": "main edits\n"},
        delete=("gone-on-main.txt",),
    )
    before = git(repo, "rev-parse", "main")
    assert gr.test_merge("task-1", "main") == ("a.txt", "both.txt", "gone-on-main.txt", "gone-on-task.txt")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "conflict"
    assert outcome.paths == ("a.txt", "both.txt", "gone-on-main.txt", "gone-on-task.txt")
    assert outcome.kinds == {
        "a.txt": "content",
        "both.txt": "add/add",
        "gone-on-main.txt": "modify/delete",
        "gone-on-task.txt": "delete/modify",
    }
    assert "a.txt" in outcome.message
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "a.txt").read_text() == "main\n"


def test_test_merge_has_no_side_effects(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    refs_before = git(repo, "show-ref")
    index_before = (repo / ".git" / "index").stat().st_mtime_ns
    objects_before = git(repo, "count-objects")
    assert gr.test_merge("task-1", "main") == ()
    assert git(repo, "show-ref") == refs_before
    assert (repo / ".git" / "index").stat().st_mtime_ns == index_before
    assert git(repo, "count-objects") == objects_before
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("how", ["modified", "staged", "untracked"])
def test_dirty_main_in_merge_paths_blocks_and_keeps_user_bytes(
    gr: GitRepo, repo: Path, tmp_path: Path, how: str
) -> None:
    task(gr, tmp_path, "task-1", {"a.txt": "a1\nTASK\na3\n", "c.txt": "task c\n"})
    before = git(repo, "rev-parse", "main")
    user_bytes = b"user work \xe2\x9c\x93\r\n"
    target = repo / ("c.txt" if how == "untracked" else "a.txt")
    target.write_bytes(user_bytes)
    if how == "staged":
        git(repo, "add", "a.txt")
    status_before = git(repo, "status", "--porcelain")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "blocked"
    assert outcome.paths == (target.name,)
    assert f"uncommitted changes in {target.name}" in outcome.message and "tuiorch retries" in outcome.message
    assert git(repo, "rev-parse", "main") == before
    assert target.read_bytes() == user_bytes
    assert git(repo, "status", "--porcelain") == status_before


def test_a_file_saved_unchanged_in_main_does_not_block_the_merge(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    """Its stat data changed, not its content: clean, as `git merge` would see it, so the merge lands."""
    task(gr, tmp_path, "task-1", {"a.txt": "a1\nTASK\na3\n"})
    content = (repo / "a.txt").read_bytes()
    (repo / "a.txt").unlink()
    (repo / "a.txt").write_bytes(content)  # a new inode and mtime, the same bytes
    os.utime(repo / "a.txt", (1_000_000_000, 1_000_000_000))
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert (repo / "a.txt").read_text() == "a1\nTASK\na3\n"
    assert git(repo, "status", "--porcelain") == ""


def test_unrelated_dirty_and_staged_files_survive_merge(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"a.txt": "a1\nTASK\na3\n", "c.txt": "c\n"})
    (repo / "b.txt").write_bytes(b"b1\nuser edit, unstaged\n")
    write(repo, {"README.md": "# staged by the user\n", "notes.txt": "untracked\n"})
    git(repo, "add", "README.md")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "merged"
    assert (repo / "b.txt").read_bytes() == b"b1\nuser edit, unstaged\n"
    assert (repo / "a.txt").read_text() == "a1\nTASK\na3\n"
    assert git(repo, "diff", "--cached", "--name-only") == "README.md"
    assert git(repo, "diff", "--name-only") == "b.txt"
    assert sorted(git(repo, "status", "--porcelain").splitlines()) == sorted(
        ["M  README.md", " M b.txt", "?? notes.txt"]
    )


def test_main_checked_out_in_a_linked_worktree_is_updated(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "elsewhere")
    main_wt = tmp_path / "main-wt"
    git(repo, "worktree", "add", "-q", str(main_wt), "main")
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"}, delete=("b.txt",))
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert git(main_wt, "status", "--porcelain") == ""
    assert (main_wt / "c.txt").exists() and not (main_wt / "b.txt").exists()
    assert git(repo, "status", "--porcelain") == ""  # the primary, on another branch, is untouched
    assert (repo / "b.txt").exists() and not (repo / "c.txt").exists()


def test_main_checked_out_nowhere_only_the_ref_moves(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert len(parents(repo, "main")) == 2
    assert not (repo / "c.txt").exists()
    assert git(repo, "status", "--porcelain") == ""


def test_main_in_the_middle_of_a_merge_blocks(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    git(repo, "checkout", "-q", "-b", "side")
    commit_files(repo, {"a.txt": "side\n"})
    git(repo, "checkout", "-q", "main")
    commit_files(repo, {"a.txt": "main\n"})
    with pytest.raises(Exception):  # noqa: B017 - git exits 1 on the conflict we want
        git(repo, "merge", "side")
    before = git(repo, "rev-parse", "main")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "blocked" and "middle of a merge" in outcome.message
    assert git(repo, "rev-parse", "main") == before


def test_concurrent_commit_on_main_survives_and_merge_is_recomputed(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    calls: list[str] = []

    def user_commits_meanwhile() -> None:
        if not calls:
            calls.append(commit_files(repo, {"b.txt": "user commit\n"}, "user's own work"))

    outcome = gr.merge("task-1", "main", "m", _before_cas=user_commits_meanwhile)
    assert outcome.status == "merged"
    assert parents(repo, "main") == [calls[0], git(repo, "rev-parse", "task-1")]
    assert (repo / "b.txt").read_text() == "user commit\n"
    assert (repo / "c.txt").read_text() == "c\n"
    assert git(repo, "status", "--porcelain") == ""


def test_concurrent_commit_that_conflicts_is_kept_and_reported(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    task(gr, tmp_path, "task-1", {"a.txt": "task\n"})
    user_commit: list[str] = []

    def user_commits_meanwhile() -> None:
        if not user_commit:
            user_commit.append(commit_files(repo, {"a.txt": "user\n"}))

    outcome = gr.merge("task-1", "main", "m", _before_cas=user_commits_meanwhile)
    assert outcome.status == "conflict" and outcome.paths == ("a.txt",)
    assert git(repo, "rev-parse", "main") == user_commit[0]
    assert git(repo, "status", "--porcelain") == ""


def test_busy_ref_lock_is_waited_for(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    calls = []

    def another_git_holds_the_lock() -> None:
        calls.append(1)
        if len(calls) == 1:
            lock.write_text("")
        else:
            lock.unlink(missing_ok=True)

    outcome = gr.merge("task-1", "main", "m", _before_cas=another_git_holds_the_lock)
    assert outcome.status == "merged" and len(calls) == 2
    assert len(parents(repo, "main")) == 2


def test_busy_index_in_checked_out_main_blocks(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    before = git(repo, "rev-parse", "main")
    (repo / ".git" / "index.lock").write_text("")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "blocked" and "busy" in outcome.message
    assert git(repo, "rev-parse", "main") == before and not (repo / "c.txt").exists()
    (repo / ".git" / "index.lock").unlink()
    assert gr.merge("task-1", "main", "m").status == "merged"


def _side_commit(repo: Path, files: dict[str, str], delete: tuple[str, ...] = ()) -> tuple[str, str]:
    """(main's tip, a commit on branch side changing `files`), main checked out again."""
    old = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "side")
    new = commit_files(repo, files, delete=delete)
    git(repo, "checkout", "-q", "main")
    return old, new


def _no_match(paths: list[str]) -> list[tuple[str, str, str]]:
    return []


def test_rollback_after_a_full_update_restores_files_and_leaves_the_index(repo: Path) -> None:
    old, new = _side_commit(repo, {"a.txt": "merged a\n", "dir/new.txt": "n\n"}, delete=("README.md",))
    (repo / "b.txt").write_text("user edit elsewhere\n")
    update = IndexUpdate(Checkout(repo, repo / ".git"))
    update.lock()
    update.apply(old, new, {"a.txt", "dir/new.txt", "README.md"}, _no_match)
    assert (repo / "dir/new.txt").exists() and not (repo / "README.md").exists()
    update.stage()
    update.rollback()
    assert not (repo / ".git" / "index.lock").exists()
    assert (repo / "a.txt").read_text() == "a1\na2\na3\n" and not (repo / "dir").exists()
    assert (repo / "README.md").read_text() == "# demo\n"
    assert git(repo, "status", "--porcelain") == "M b.txt"


def test_a_filter_failing_half_way_is_undone_and_named(repo: Path) -> None:
    """git stops writing files when a required filter fails: what it wrote goes back, the index is as it was."""
    old, new = _side_commit(repo, {"a.txt": "merged a\n", "z.bin": "zzz\n", "dir/new.txt": "n\n"})
    git(repo, "config", "filter.broken.smudge", "false")
    git(repo, "config", "filter.broken.required", "true")
    (repo / ".git" / "info" / "attributes").write_text("z.bin filter=broken\n")
    update = IndexUpdate(Checkout(repo, repo / ".git"))
    update.lock()
    with pytest.raises(Refused, match="z.bin"):
        update.apply(old, new, {"a.txt", "z.bin", "dir/new.txt"}, _no_match)
    update.rollback()
    (repo / ".git" / "info" / "attributes").unlink()
    assert (repo / "a.txt").read_text() == "a1\na2\na3\n"
    assert not (repo / "z.bin").exists() and not (repo / "dir").exists()
    assert git(repo, "status", "--porcelain") == "" and not (repo / ".git" / "index.lock").exists()


def test_ref_locked_forever_blocks_the_merge_with_a_clear_message(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    before = git(repo, "rev-parse", "main")
    (repo / ".git" / "refs" / "heads" / "main.lock").write_text("")
    outcome = gr.merge("task-1", "main", "m")
    assert outcome.status == "blocked"  # the task's work is kept; the merge is tried again later
    assert "refs/heads/main.lock" in outcome.message
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain") == ""


def test_merges_from_many_threads_all_land(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    names = [f"task-{n}" for n in range(4)]
    for name in names:
        task(gr, tmp_path, name, {f"{name}.txt": name})
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda n: gr.merge(n, "main", f"merge {n}"), names))
    assert [o.status for o in outcomes] == ["merged"] * 4
    assert git(repo, "rev-list", "--merges", "--count", "main") == "4"
    assert all((repo / f"{n}.txt").exists() for n in names)
    assert git(repo, "status", "--porcelain") == ""
    assert threading.active_count() >= 1


# ------------------------------------------------- two-phase merge (the check gate)


def test_prepare_writes_the_merge_commit_but_moves_nothing(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n", "a.txt": "a1\nA2\na3\n"}, delete=("b.txt",))
    before = git(repo, "rev-parse", "main")
    prepared = gr.prepare_merge("task-1", "main", "feat: one\n")
    assert isinstance(prepared, PreparedMerge)
    assert git(repo, "rev-parse", "main") == before and not (repo / "c.txt").exists()
    assert prepared.base_tip == before and prepared.branch_tip == git(repo, "rev-parse", "task-1")
    assert parents(repo, prepared.commit) == [before, prepared.branch_tip]
    assert git(repo, "log", "-1", "--format=%B", prepared.commit) == "feat: one"
    assert git(repo, "rev-parse", f"{prepared.commit}^{{tree}}") == prepared.tree
    assert prepared.paths == ("a.txt", "b.txt", "c.txt")
    assert git(repo, "status", "--porcelain") == ""


def test_prepare_reports_already_and_conflict_like_merge(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    gr.prepare_worktree(tmp_path / "wts" / "empty", "empty", "main")
    already = gr.prepare_merge("empty", "main", "m")
    assert isinstance(already, MergeOutcome) and already.status == "already"
    task(gr, tmp_path, "task-1", {"a.txt": "task\n"})
    commit_files(repo, {"a.txt": "main\n"})
    conflict = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(conflict, MergeOutcome) and conflict.status == "conflict"
    assert conflict.paths == ("a.txt",) and conflict.kinds == {"a.txt": "content"}


def test_land_moves_main_to_exactly_the_prepared_commit(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    outcome = gr.land_merge(prepared)
    assert outcome.status == "merged" and outcome.commit == prepared.commit
    assert git(repo, "rev-parse", "main") == prepared.commit
    assert (repo / "c.txt").read_text() == "c\n" and git(repo, "status", "--porcelain") == ""


def test_land_after_main_moved_changes_nothing(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    user_commit = commit_files(repo, {"b.txt": "user\n"}, "user's work")
    outcome = gr.land_merge(prepared)
    assert outcome.status == "moved" and outcome.commit is None
    assert git(repo, "rev-parse", "main") == user_commit
    assert not (repo / "c.txt").exists() and git(repo, "status", "--porcelain") == ""
    again = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(again, PreparedMerge) and again.base_tip == user_commit
    assert gr.land_merge(again).status == "merged"
    assert parents(repo, "main") == [user_commit, git(repo, "rev-parse", "task-1")]


def test_land_is_blocked_by_dirty_files_and_can_be_retried(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"a.txt": "task\n"})
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    (repo / "a.txt").write_text("user typing\n")
    blocked = gr.land_merge(prepared)
    assert blocked.status == "blocked" and blocked.paths == ("a.txt",)
    assert (repo / "a.txt").read_text() == "user typing\n"
    git(repo, "checkout", "--", "a.txt")
    assert gr.land_merge(prepared).status == "merged"
    assert git(repo, "rev-parse", "main") == prepared.commit


def test_land_with_another_message_keeps_tree_and_parents(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    prepared = gr.prepare_merge("task-1", "main", "first")
    assert isinstance(prepared, PreparedMerge)
    outcome = gr.land_merge(prepared, "second")
    assert outcome.status == "merged" and outcome.commit != prepared.commit
    assert git(repo, "log", "-1", "--format=%s", "main") == "second"
    assert git(repo, "rev-parse", "main^{tree}") == prepared.tree
    assert parents(repo, "main") == [prepared.base_tip, prepared.branch_tip]


def test_land_refuses_a_forged_prepared_merge(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    before = git(repo, "rev-parse", "main")
    with pytest.raises(GitError, match="is not the prepared merge"):
        gr.land_merge(replace(prepared, commit=prepared.branch_tip))
    with pytest.raises(GitError, match="does not exist"):
        gr.land_merge(replace(prepared, commit="0" * 40))
    assert git(repo, "rev-parse", "main") == before


def test_land_waits_for_a_busy_ref_lock_then_reports_blocked(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    task(gr, tmp_path, "task-1", {"c.txt": "c\n"})
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    outcome = gr.land_merge(prepared)
    assert outcome.status == "blocked" and "locked" in outcome.message
    lock.unlink()
    assert gr.land_merge(prepared).status == "merged"


def test_checkout_detached_makes_then_reuses_a_clean_scratch_worktree(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    task(gr, tmp_path, "task-1", {"dir/c.txt": "c\n"}, delete=("b.txt",))
    prepared = gr.prepare_merge("task-1", "main", "m")
    assert isinstance(prepared, PreparedMerge)
    scratch = tmp_path / "scratch"
    gr.checkout_detached(scratch, prepared.commit)
    assert git(scratch, "rev-parse", "HEAD") == prepared.commit
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=scratch).returncode == 1  # detached
    assert (scratch / "dir/c.txt").exists() and not (scratch / "b.txt").exists()
    # a check run leaves edits, junk and a kept venv behind
    (scratch / "a.txt").write_text("check scribbled\n")
    (scratch / "dir/c.txt").unlink()
    (scratch / ".pytest_cache").mkdir()
    (scratch / ".venv").mkdir()
    (scratch / ".venv" / "marker").write_text("kept\n")
    main_tip = git(repo, "rev-parse", "main")
    gr.checkout_detached(scratch, main_tip, keep=[".venv"])
    assert git(scratch, "rev-parse", "HEAD") == main_tip
    assert (scratch / "b.txt").read_text() == "b1\n" and not (scratch / "dir").exists()
    assert (scratch / "a.txt").read_text() == "a1\na2\na3\n"
    assert not (scratch / ".pytest_cache").exists() and (scratch / ".venv" / "marker").exists()
    assert git(scratch, "status", "--porcelain", "--ignored") == "?? .venv/"  # only the kept dir
    assert git(repo, "rev-parse", "main") == main_tip and git(repo, "branch", "--list", "task-1") != ""


def test_checkout_detached_refuses_foreign_dirs_and_unknown_commits(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("mine\n")
    with pytest.raises(GitError, match="not a tuiorch worktree"):
        gr.checkout_detached(foreign, git(repo, "rev-parse", "main"))
    assert (foreign / "precious.txt").read_text() == "mine\n"
    with pytest.raises(GitError, match="is not a commit"):
        gr.checkout_detached(tmp_path / "scratch", "not-a-sha")
    with pytest.raises(GitError, match="is not a commit"):
        gr.checkout_detached(tmp_path / "scratch", "0" * 40)


# -------------------------------------------------------- conflict triage


def _conflicted(gr: GitRepo, repo: Path, tmp_path: Path) -> Path:
    write(repo, {"gone-on-main.txt": "x\n"})
    commit_files(repo, {})
    wt = task(gr, tmp_path, "task-1", {"a.txt": "a1\nTASK\na3\n", "gone-on-main.txt": "task edits\n"})
    commit_files(repo, {"a.txt": "a1\nMAIN\na3\n"}, delete=("gone-on-main.txt",))
    return wt


def test_conflict_sides_show_main_task_and_ancestor(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    _conflicted(gr, repo, tmp_path)
    assert gr.conflict_sides("task-1", "main", "a.txt") == (
        "a1\nMAIN\na3\n",
        "a1\nTASK\na3\n",
        "a1\na2\na3\n",
    )
    assert gr.conflict_sides("task-1", "main", "gone-on-main.txt") == (None, "task edits\n", "x\n")


def test_conflict_sides_binary_is_a_placeholder(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wts" / "task-1"
    gr.prepare_worktree(wt, "task-1", "main")
    (wt / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    commit_files(wt, {})
    ours, theirs, ancestor = gr.conflict_sides("task-1", "main", "blob.bin")
    assert ours is None and ancestor is None
    assert theirs == "[binary file, 9 bytes]"


def test_manual_resolution_end_to_end(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = _conflicted(gr, repo, tmp_path)
    assert gr.merge("task-1", "main", "m").status == "conflict"
    conflicted = gr.start_manual_merge(wt, "main")
    assert conflicted == ("a.txt", "gone-on-main.txt")
    assert gr.conflicted_paths(wt) == conflicted
    text = (wt / "a.txt").read_text()
    assert "<<<<<<< task-1\n" in text and ">>>>>>> main\n" in text
    assert (Path(git(wt, "rev-parse", "--absolute-git-dir")) / "MERGE_HEAD").exists()
    with pytest.raises(GitError, match="still in conflict: a.txt, gone-on-main.txt"):
        gr.finish_manual_merge(wt, "resolve")
    gr.take_side(wt, "a.txt", "ours")  # main's version
    gr.take_side(wt, "gone-on-main.txt", "ours")  # main deleted it
    assert gr.conflicted_paths(wt) == ()
    assert (wt / "a.txt").read_text() == "a1\nMAIN\na3\n"
    assert not (wt / "gone-on-main.txt").exists()
    task_tip, main_tip = git(repo, "rev-parse", "task-1"), git(repo, "rev-parse", "main")
    sha = gr.finish_manual_merge(wt, "resolve conflicts")
    assert parents(repo, sha) == [task_tip, main_tip]
    assert git(wt, "status", "--porcelain") == ""
    assert not (Path(git(wt, "rev-parse", "--absolute-git-dir")) / "MERGE_HEAD").exists()
    outcome = gr.merge("task-1", "main", "merge task-1")
    assert outcome.status == "merged"
    assert parents(repo, "main") == [main_tip, sha]
    assert "<<<<<<<" not in (repo / "a.txt").read_text()
    assert subprocess.run(["git", "grep", "-q", "<<<<<<<", "main"], cwd=repo).returncode == 1  # no markers
    assert git(repo, "status", "--porcelain") == ""


def test_take_theirs_keeps_the_task_version_including_a_modified_file_main_deleted(
    gr: GitRepo, repo: Path, tmp_path: Path
) -> None:
    wt = _conflicted(gr, repo, tmp_path)
    gr.start_manual_merge(wt, "main")
    gr.take_side(wt, "a.txt", "theirs")
    gr.take_side(wt, "gone-on-main.txt", "theirs")
    gr.finish_manual_merge(wt, "keep task")
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert (repo / "a.txt").read_text() == "a1\nTASK\na3\n"
    assert (repo / "gone-on-main.txt").read_text() == "task edits\n"
    with pytest.raises(GitError, match="not in conflict"):
        gr.take_side(wt, "a.txt", "ours")


def test_finish_refuses_remaining_markers(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = _conflicted(gr, repo, tmp_path)
    gr.start_manual_merge(wt, "main")
    gr.take_side(wt, "gone-on-main.txt", "ours")
    with pytest.raises(GitError, match="still has conflict markers"):
        gr.mark_resolved(wt, "a.txt")
    # An agent that stages a file with markers in it is caught at the finish.
    git(wt, "add", "a.txt")
    with pytest.raises(GitError, match="conflict markers remain in a.txt"):
        gr.finish_manual_merge(wt, "bad")
    (wt / "a.txt").write_text("a1\nMAIN and TASK\na3\n")  # edited by hand, not staged
    sha = gr.finish_manual_merge(wt, "hand resolution")
    assert git(wt, "show", f"{sha}:a.txt") == "a1\nMAIN and TASK\na3"
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert (repo / "a.txt").read_text() == "a1\nMAIN and TASK\na3\n"


def test_mark_resolved_accepts_a_hand_edit(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = _conflicted(gr, repo, tmp_path)
    gr.start_manual_merge(wt, "main")
    (wt / "a.txt").write_text("merged by hand\n")
    gr.mark_resolved(wt, "a.txt")
    (wt / "gone-on-main.txt").unlink()
    gr.mark_resolved(wt, "gone-on-main.txt")
    assert gr.conflicted_paths(wt) == ()
    gr.finish_manual_merge(wt, "done")
    assert gr.merge("task-1", "main", "m").status == "merged"
    assert (repo / "a.txt").read_text() == "merged by hand\n"
    assert not (repo / "gone-on-main.txt").exists()


def test_start_manual_merge_refuses_a_dirty_worktree(gr: GitRepo, repo: Path, tmp_path: Path) -> None:
    wt = _conflicted(gr, repo, tmp_path)
    (wt / "b.txt").write_text("uncommitted\n")
    with pytest.raises(GitError, match="uncommitted changes"):
        gr.start_manual_merge(wt, "main")


def test_files_already_holding_the_merge_result_do_not_block_it(tmp_path: Path) -> None:
    """What a crash between the checkout and the ref move leaves behind: main's files ahead of main."""
    from tests.conftest import git as run_git
    from tests.conftest import make_repo

    repo = make_repo(tmp_path / "r", {"a.txt": "a\n", "gone.txt": "g\n"})
    run_git(repo, "branch", "t")
    wt = tmp_path / "wt"
    run_git(repo, "worktree", "add", "-q", str(wt), "t")
    (wt / "new.txt").write_text("new\n")
    (wt / "a.txt").write_text("a2\n")
    (wt / "gone.txt").unlink()
    run_git(wt, "add", "-A")
    run_git(wt, "commit", "-qm", "task work")
    (repo / "new.txt").write_text("new\n")
    (repo / "a.txt").write_text("a2\n")
    (repo / "gone.txt").unlink()
    outcome = GitRepo(repo).merge("t", "main", "merge t")
    assert outcome.status == "merged"
    assert run_git(repo, "status", "--porcelain") == ""
    assert run_git(repo, "rev-list", "--parents", "-n", "1", "main").count(" ") == 2
