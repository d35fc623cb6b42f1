"""The path rules of the git package on their own: keep paths, scratch files, the info/exclude line for
a nested worktree (checked by git itself), branch names that clash, git's identity lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, make_repo
from tuiorch.git import GitRepo, branch_clash, valid_branch_name
from tuiorch.git.cleaning import exclude_pattern, is_scratch, normalize_keep
from tuiorch.git.identity import parse_ident


def test_keep_paths_are_made_relative_and_never_reach_git_or_outside() -> None:
    assert normalize_keep(["./.venv/", "node_modules", " build/out ", "././x"]) == {
        ".venv",
        "node_modules",
        "build/out",
        "x",
    }
    assert normalize_keep([".git", "../elsewhere", "a/../../b", "", "/"]) == set()


def test_scratch_patterns_match_any_path_component() -> None:
    assert is_scratch(".aider.chat.history.md", [".aider*"])
    assert is_scratch("sub/.aider.tags.cache.v3/x", [".aider*"])
    assert not is_scratch("src/aider.py", [".aider*"])
    assert not is_scratch("anything", [])


@pytest.mark.parametrize("name", ["wt", "wt[1]", "slot #2", "w*", "odd!name"])
def test_a_nested_worktree_is_excluded_exactly_as_named(tmp_path: Path, name: str) -> None:
    """git reads the exclude line back: the worktree folder is ignored, a look-alike sibling is not."""
    repo = make_repo(tmp_path / "repo")
    gr = GitRepo(repo)
    gr.prepare_worktree(repo / ".worktrees" / name, "task-1", "main")
    (repo / ".worktrees" / "wt1").mkdir(exist_ok=True)
    (repo / ".worktrees" / "wt1" / "f").write_text("x")
    assert exclude_pattern(f".worktrees/{name}") in (repo / ".git" / "info" / "exclude").read_text()
    untracked = {line[3:] for line in git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()}
    assert not any(path.startswith(f".worktrees/{name}/") for path in untracked)
    assert ".worktrees/wt1/f" in untracked


def test_branch_names_that_git_cannot_hold_together() -> None:
    assert branch_clash("task/1", ["main", "task"]) == "task"
    assert branch_clash("task", ["task/1"]) == "task/1"
    assert branch_clash("task-1", ["task", "task-10"]) is None
    assert valid_branch_name("task-1") and not valid_branch_name("bad..name") and not valid_branch_name("")


def test_identity_lines_from_git_var() -> None:
    assert parse_ident("Ada Lovelace <ada@example.com> 1700000000 +0000") == ("Ada Lovelace", "ada@example.com")
    assert parse_ident("no email here") is None
    env = {**os.environ, "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@x"}
    done = subprocess.run(["git", "var", "GIT_COMMITTER_IDENT"], capture_output=True, text=True, env=env)
    assert parse_ident(done.stdout.strip()) == ("T", "t@x")
