"""The bubblewrap command line that confines one agent, and whether bubblewrap works on this machine.

Inside the sandbox the whole filesystem is mounted read-only; only the agent's worktree, its private git
directory, the agent CLI's own state folders and the user's extra paths are mounted writable, and /tmp is a
fresh tmpfs. Every path keeps its own name inside, so prompts, logs and error messages name the same files.
The network stays shared (agents call their model's API). The sandbox has its own process namespace: the
agent sees and signals only its own processes, and they all die with the sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BWRAP",
    "PRIVATE_TEMP",
    "SandboxSpec",
    "StatePath",
    "bubblewrap_problem",
    "hidden_by_private_temp",
    "sandbox_argv",
    "state_paths",
]

BWRAP = "bwrap"
#: Folders each sandbox gets empty and private.
PRIVATE_TEMP = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))

#: Each preset's own folders (ending in "/") and files, relative to $HOME unless an environment variable
#: names them: logins, settings, sessions and caches the CLI writes at every run.
_STATE_PATHS: dict[str, tuple[str, ...]] = {
    "claude": ("$CLAUDE_CONFIG_DIR|~/.claude/", "~/.claude.json", "~/.claude.json.backup"),
    "codex": ("$CODEX_HOME|~/.codex/",),
    "gemini": ("~/.gemini/",),
    "opencode": (
        "$XDG_CONFIG_HOME|~/.config:opencode/",
        "$XDG_DATA_HOME|~/.local/share:opencode/",
        "$XDG_CACHE_HOME|~/.cache:opencode/",
        "$XDG_STATE_HOME|~/.local/state:opencode/",
    ),
    "aider": ("~/.aider/",),
}


@dataclass(frozen=True)
class StatePath:
    path: Path
    folder: bool


def state_paths(preset: str, env: Mapping[str, str]) -> tuple[StatePath, ...]:
    """The state folders and files of a preset's CLI, with the environment's overrides applied.

    A spec is "$VAR|~/default" (the variable's value, else the default) with an optional ":sub" appended.
    """
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    return tuple(_state_path(spec, env, home) for spec in _STATE_PATHS.get(preset, ()))


def _state_path(spec: str, env: Mapping[str, str], home: Path) -> StatePath:
    """One "$VAR|~/default:sub" spec (a folder when it ends in "/") resolved in `env`."""
    folder = spec.endswith("/")
    spec, _, sub = spec.rstrip("/").partition(":")
    variable, _, default = spec.rpartition("|")
    value = env.get(variable[1:], "") if variable else ""
    base = Path(value) if value else home / default.removeprefix("~/")
    return StatePath(base / sub if sub else base, folder)


@dataclass(frozen=True)
class SandboxSpec:
    """What one confined agent may write; everything else is read-only."""

    worktree: Path
    #: The agent's own git directory (outside the worktree) and the file bound over `<worktree>/.git`.
    git_dir: Path
    gitfile: Path
    #: CLI state and user-listed paths: writable when they exist.
    writable: tuple[Path, ...] = ()
    #: Paths under a private temp folder (/tmp, /var/tmp) the agent must still see, read-only: the
    #: repository, the worktrees' folder, $HOME, the program and PATH's folders when they live there.
    visible: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def sandbox_argv(spec: SandboxSpec, command: Sequence[str], *, bwrap: str = BWRAP) -> list[str]:
    """`bwrap ... -- command`: the agent's argv run inside its sandbox."""
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for temp in PRIVATE_TEMP:
        argv += ["--tmpfs", str(temp)]
    argv += _binds("--ro-bind-try", spec.visible)
    argv += _binds("--bind-try", spec.writable)
    argv += [
        "--bind", str(spec.worktree), str(spec.worktree),
        "--bind", str(spec.git_dir), str(spec.git_dir),
        # Bound last so nothing above can cover it: the worktree's git is the agent's own repository.
        "--ro-bind", str(spec.gitfile), str(spec.worktree / ".git"),
        "--chdir", str(spec.worktree),
        "--setenv", "TMPDIR", "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        # As root, bubblewrap keeps capabilities unless told: without them root cannot remount / writable.
        "--cap-drop", "ALL",
    ]  # fmt: skip
    for key, value in spec.env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *command]


def _binds(option: str, paths: Sequence[Path]) -> list[str]:
    """`option path path` for each of `paths`: each bound at its own place."""
    return [arg for path in paths for arg in (option, str(path), str(path))]


def hidden_by_private_temp(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Those of `paths` that a private temp folder would hide (each once, resolved); never a temp folder
    itself, which stays private."""
    found: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        if _inside_private_temp(resolved) and resolved not in found:
            found.append(resolved)
    return tuple(found)


def _inside_private_temp(path: Path) -> bool:
    return any(path.is_relative_to(temp) and path != temp for temp in PRIVATE_TEMP)


@functools.cache
def bubblewrap_problem(bwrap: str = BWRAP) -> str | None:
    """None when bubblewrap can start a sandbox here; else what is wrong, in a sentence.

    Tried for real (a sandbox running `true`): being installed is not enough, since bubblewrap needs user
    namespaces when not run as root, and containers often forbid them.
    """
    program = shutil.which(bwrap)
    if program is None:
        return f"bubblewrap ({bwrap}) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run(
            [program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
             "--die-with-parent", "--cap-drop", "ALL", "--", true],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({program}) could not start: {exc}"
    return _sandbox_failure(program, done) if done.returncode != 0 else None


def _sandbox_failure(program: str, done: subprocess.CompletedProcess[str]) -> str:
    """What bubblewrap's failed trial run says, with a hint where user namespaces are the likely cause."""
    words = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
    hint = "" if os.geteuid() == 0 else " (user namespaces may be disabled: kernel.unprivileged_userns_clone)"
    return f"bubblewrap ({program}) cannot make a sandbox here: {words[0]}{hint}"
