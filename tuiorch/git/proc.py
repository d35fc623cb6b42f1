"""Running the git CLI: an environment that cannot be redirected, one call shape, and the config
every task worktree gets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tuiorch.git.errors import GitError

#: Variables that would make a git subprocess work on another repository, index or object store.
_REDIRECTING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")

# Every git tuiorch or an agent runs in a task worktree gets these: a full checkout (a sparse cone
# inherited from the user's checkout would make absent files look deleted) and a plain index that
# libgit2 can read (it refuses split and sparse indexes).
TASK_WORKTREE_CONFIG = {
    "core.sparseCheckout": "false",
    "core.sparseCheckoutCone": "false",
    "index.sparse": "false",
    "core.splitIndex": "false",
    # git's automatic repacking after a commit would run in an agent's worktree on the object store
    # every other agent and the merges use at that moment, and stall that agent meanwhile (seconds on a
    # big repository): the run asks for it once, when it ends (see GitRepo.maintain).
    "maintenance.auto": "false",
    "gc.auto": "0",
}


def clean_env() -> dict[str, str]:
    """The environment for git subprocesses, without variables that would redirect them elsewhere."""
    env = dict(os.environ)
    for name in _REDIRECTING:
        env.pop(name, None)
    return env


def git_env(**extra: str) -> dict[str, str]:
    """clean_env() with git's messages untranslated (they are parsed), plus `extra`."""
    env = clean_env()
    env["LC_ALL"] = "C"
    env.update(extra)
    return env


def with_task_worktree_config(env: dict[str, str]) -> dict[str, str]:
    """`env` plus TASK_WORKTREE_CONFIG as git's GIT_CONFIG_COUNT entries (kept after any already set)."""
    merged = dict(env)
    try:
        count = int(merged.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for key, value in TASK_WORKTREE_CONFIG.items():
        merged[f"GIT_CONFIG_KEY_{count}"] = key
        merged[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    merged["GIT_CONFIG_COUNT"] = str(count)
    return merged


def run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git and return what it did; the caller judges the exit code."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def run_checked(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run git and return its stdout; GitError naming the command when it fails."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise GitError(f"git {args[0]} {args[1] if len(args) > 1 else ''} failed: {detail}".strip())
    return done.stdout


def output(done: subprocess.CompletedProcess[bytes]) -> str:
    """What a failed git (or hook) said, on stderr and stdout."""
    return (done.stderr + done.stdout).decode(errors="replace").strip() or f"exit {done.returncode}"


def show_toplevel(path: Path) -> Path | None:
    """The work tree git finds from `path` (core.worktree, a .git file), or None outside one."""
    cwd = path if path.is_dir() else path.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            env=clean_env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None  # no git on PATH: the caller reports that where it matters
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return Path(os.fsdecode(done.stdout.strip())).resolve()
