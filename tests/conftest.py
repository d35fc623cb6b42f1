"""Shared fixtures: real git repositories in temp dirs, with their own identity (CI has none)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import ConfigLevel


def git(cwd: Path, *args: str) -> str:
    """Run the git CLI in `cwd` and return its stdout (tests only; tuiorch itself uses pygit2)."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, *, branch: str = "main") -> Path:
    """A repo with one commit on `branch` holding `files` (default: README.md)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    for rel, text in (files or {"README.md": "# demo\n"}).items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repo at tmp_path/repo; worktrees default to tmp_path/repo-worktrees."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def _no_global_git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Behave like CI: no global git config, so only the temp repos' own identity exists."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("TUIORCH_DEMO_DELAY", "0.01")


@pytest.fixture(autouse=True, scope="session")
def _libgit2_without_global_config(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """libgit2 fixes its config search path when pygit2 is imported, so HOME changes do not reach it."""
    empty = str(tmp_path_factory.mktemp("libgit2-home"))
    levels = (ConfigLevel.GLOBAL, ConfigLevel.XDG, ConfigLevel.SYSTEM)
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    for level in levels:
        pygit2.settings.search_path[level] = empty
    yield
    for level, value in saved.items():
        pygit2.settings.search_path[level] = value


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Ray cluster's tests last: their session fixture moves the whole test process into a
    network namespace of its own and keeps a two-node cluster up until the session ends, which the
    rest of the suite should neither share nor wait behind."""
    ray_dir = Path(__file__).parent / "ray"
    items.sort(key=lambda item: Path(str(item.path)).is_relative_to(ray_dir))
