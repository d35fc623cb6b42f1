"""A task's diff as data: from real git objects (branch, worktree with uncommitted work, merge commit)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, make_repo
from tuiorch.diffs import ADDED, CONTEXT, REMOVED, DiffLine, change_stat, side_by_side
from tuiorch.gitops import GitRepo


def line(kind: str, old: int | None, new: int | None, text: str) -> DiffLine:
    return DiffLine(kind, old, new, text)


def test_side_by_side_pairs_each_removed_run_with_the_added_run_after_it() -> None:
    a, b = line(REMOVED, 1, None, "a"), line(REMOVED, 2, None, "b")
    c, same, d = line(ADDED, None, 1, "c"), line(CONTEXT, 3, 2, "same"), line(ADDED, None, 3, "d")
    assert side_by_side([a, b, c, same, d]) == [(a, c), (b, None), (same, same), (None, d)]


def test_change_stat_words() -> None:
    assert change_stat(0, 0, 0) == "no changes"
    assert change_stat(1, 3, 0) == "1 file +3 −0"
    assert change_stat(2, 10, 4) == "2 files +10 −4"


def repo_with_task(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"a.py": "".join(f"x{i} = {i}\n" for i in range(100))}, branch="master")
    git(repo, "checkout", "-q", "-b", "task-1")
    (repo / "a.py").write_text("".join(f"x{i} = {i * (2 if i == 50 else 1)}\n" for i in range(100)))
    (repo / "b.py").write_text("y = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "task")
    git(repo, "checkout", "-q", "master")
    (repo / "c.txt").write_text("master moved on\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "master moves")
    return repo


def test_a_branch_is_compared_with_its_merge_base_not_with_where_master_is_now(tmp_path: Path) -> None:
    repo = repo_with_task(tmp_path)
    diff = GitRepo(repo).task_diff("master", branch="task-1")
    assert [(f.path, f.status, f.added, f.removed) for f in diff.files] == [("a.py", "modified", 1, 1),
                                                                           ("b.py", "added", 1, 0)]
    assert diff.stat == "2 files +2 −1" and diff.source == "branch task-1"
    hunk = diff.files[0].hunks[0]
    assert [(x.kind, x.old, x.new, x.text) for x in hunk.lines if x.kind != CONTEXT] == [
        (REMOVED, 51, None, "x50 = 50"), (ADDED, None, 51, "x50 = 100")]


def test_a_running_agents_worktree_counts_its_uncommitted_and_new_files(tmp_path: Path) -> None:
    repo = repo_with_task(tmp_path)
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "task-1")
    (worktree / "b.py").write_text("y = 2\n")
    (worktree / "new" / "deep").mkdir(parents=True)
    (worktree / "new" / "deep" / "d.md").write_text("# new\n")
    diff = GitRepo(repo).task_diff("master", worktree=worktree)
    assert [(f.path, f.added, f.removed) for f in diff.files] == [("a.py", 1, 1), ("b.py", 1, 0),
                                                                 ("new/deep/d.md", 1, 0)]
    assert diff.source == "task-1 + uncommitted work"


def test_a_merged_task_shows_what_its_merge_brought_and_a_huge_hunk_is_cut_with_whole_counts(tmp_path: Path) -> None:
    repo = repo_with_task(tmp_path)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge task-1", "task-1")
    merge = git(repo, "rev-parse", "HEAD")
    diff = GitRepo(repo).task_diff("master", commit=merge)
    assert diff.stat == "2 files +2 −1" and diff.source == f"merged as {merge[:7]}"
    cut = GitRepo(repo).task_diff("master", commit=merge, max_lines=3)
    first = cut.files[0]
    assert (first.added, first.removed) == (1, 1) and first.truncated
    assert sum(len(h.lines) for f in cut.files for h in f.hunks) == 3
