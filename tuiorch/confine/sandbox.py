"""Confinement for a run: whether agents are confined, and each agent's sandbox around its command.

`decide` turns `[agent] confine` into a `Sandbox` (or None) once per run; `Sandbox.enter` makes one
attempt's private repository and the bubblewrap command around the agent's argv; `ConfinedRun.collect`
brings the agent's commits back onto its task branch once it has ended.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tuiorch.config import ConfigError, Preset
from tuiorch.confine.bwrap import (
    BWRAP,
    SandboxSpec,
    bubblewrap_problem,
    hidden_by_private_temp,
    sandbox_argv,
    state_paths,
)
from tuiorch.confine.shadow import (
    Collected,
    Shadow,
    branch_stamp,
    carry_state,
    follow_branch,
    prepare_shadow,
    remove_shadow,
    take_branch,
)
from tuiorch.git.errors import GitError

__all__ = ["ConfinedRun", "Sandbox", "confined_preset", "decide", "unconfined_warning"]

#: What an unconfined agent can do that a confined one cannot, for the one warning of a run.
_UNPROTECTED = (
    "agents are not confined ({problem}): each can write anywhere this user can, move any branch "
    '(the base included) and end other processes; install bubblewrap, or set [agent] confine = "off" '
    "in {config_file} to run unconfined without this warning"
)


def unconfined_warning(problem: str, config_file: Path | str) -> str:
    return _UNPROTECTED.format(problem=problem, config_file=config_file)


@dataclass(frozen=True)
class Decision:
    sandbox: Sandbox | None
    #: The run's one warning when `auto` found no working bubblewrap; "" otherwise.
    warning: str = ""


def decide(mode: str, preset: str, writable: Sequence[str], config_file: Path | str) -> Decision:
    """`[agent] confine` for this machine. "on" without a working bubblewrap is a ConfigError."""
    if mode == "off":
        return Decision(None)
    problem = bubblewrap_problem()
    if problem is None:
        paths = tuple(Path(os.path.expanduser(path)) for path in writable)
        return Decision(Sandbox(preset=preset, writable=paths))
    if mode == "on":
        raise ConfigError(config_file, "agent", "confine", f'"on", but {problem}')
    return Decision(None, unconfined_warning(problem, config_file))


def confined_preset(preset: Preset) -> Preset:
    """The preset as it runs inside tuiorch's sandbox: a CLI whose own sandbox forbids commits (codex's
    `workspace-write` keeps `.git` read-only) runs without it, and then commits like the others."""
    argv = list(preset.argv)
    if "--sandbox" in argv and argv[argv.index("--sandbox") + 1 :][:1] == ["workspace-write"]:
        argv[argv.index("--sandbox") + 1] = "danger-full-access"
        return replace(preset, argv=tuple(argv), commits=True)
    return preset


class ConfinedRun:
    """One agent attempt in its sandbox: its private repository and its wrapped argv.

    While the agent runs, `sync` brings each new commit on its branch over as soon as it appears (so
    conflict predictions see it as they see any running branch); `collect` does it a last time at the end.
    """

    def __init__(self, shadow: Shadow, argv: list[str]) -> None:
        self.shadow = shadow
        #: The agent's argv wrapped in bubblewrap.
        self.argv = argv
        #: The task branch's tip as tuiorch last set it.
        self.tip = shadow.start
        self._stamp = branch_stamp(shadow)
        # sync runs in a worker thread that a cancelled sync loop does not stop: one at a time with collect.
        self._lock = threading.Lock()

    def sync(self, task_id: str) -> bool:
        """Take the agent's branch if it moved since the last look; True when the task branch moved.
        A rewritten history is left alone here (the agent may still put it right); `collect` refuses it."""
        with self._lock:
            stamp = branch_stamp(self.shadow)
            if stamp == self._stamp or not self.shadow.root.exists():
                return False
            self._stamp = stamp
            try:
                taken = take_branch(self.shadow, task_id, self.tip)
            except GitError:
                return False
            self.tip = taken.tip
            return taken.moved

    def collect(self, task_id: str) -> Collected:
        """The agent's commits on its branch, verified, onto the task branch; GitError when refused."""
        with self._lock:
            try:
                taken = take_branch(self.shadow, task_id, self.tip)
                self.tip = taken.tip
                if self.tip != self.shadow.start:
                    follow_branch(self.shadow)
                carry_state(self.shadow, task_id)
                return Collected(tip=self.tip, moved=self.tip != self.shadow.start, note=taken.note)
            finally:
                remove_shadow(self.shadow)


@dataclass(frozen=True)
class Sandbox:
    """How this run confines its agents."""

    preset: str
    #: The user's `[agent] writable` paths.
    writable: tuple[Path, ...] = ()
    bwrap: str = BWRAP

    def enter(
        self,
        worktree: Path,
        branch: str,
        base: str,
        task_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        visible: Sequence[Path] = (),
    ) -> ConfinedRun:
        """The private repository for this attempt and the agent's argv inside its sandbox; `visible`:
        more paths the agent reads (kept visible, read-only, under a private temp folder)."""
        shadow = prepare_shadow(worktree, branch, base, task_id)
        seen = [*_what_it_must_see(shadow, argv, env), *visible]
        spec = SandboxSpec(
            worktree=worktree,
            git_dir=shadow.git_dir,
            gitfile=shadow.gitfile,
            writable=(*_existing_state_paths(self.preset, env), *self.writable),
            visible=hidden_by_private_temp([p for p in seen if _exists(p)]),
        )
        return ConfinedRun(shadow=shadow, argv=sandbox_argv(spec, argv, bwrap=self.bwrap))


def _what_it_must_see(shadow: Shadow, argv: Sequence[str], env: Mapping[str, str]) -> list[Path]:
    """Paths the agent reads, wherever they are (a private /tmp must not hide them)."""
    search = env.get("PATH", os.environ.get("PATH", ""))
    program = shutil.which(argv[0], path=search) if argv else None
    return [
        shadow.root.parent.parent.parent,  # the common git directory: objects, prompts
        *_checkout_of(shadow),
        shadow.worktree.parent,
        Path(env.get("HOME") or os.path.expanduser("~")),
        *(Path(p) for p in search.split(os.pathsep) if p),
        *(install_roots(Path(program)) if program else []),
        *_own_installation(),
        # Files the command names (a script, a config) stay readable where they are.
        *(Path(arg) for arg in argv[1:] if arg.startswith("/")),
    ]


def _own_installation() -> list[Path]:
    """tuiorch's own installation and its Python environment: the demo agent runs as `python -m
    tuiorch.demo_agent` and must import them wherever they were installed (a clone under /tmp too)."""
    return [Path(sys.prefix), Path(__file__).resolve().parent.parent.parent]


def install_roots(program: Path) -> list[Path]:
    """The folders a program's installation spans: where it is found and, for the link and its target,
    the prefix it was installed into (the folder holding a `node_modules` tree, or the one above `bin`).
    An npm CLI's `.bin` entry is a link into its package, and a virtualenv's script needs its `lib`."""
    roots = [program.parent]
    for path in (program, program.resolve()):
        parts = path.parts
        if "node_modules" in parts:
            roots.append(Path(*parts[: parts.index("node_modules")]))
        elif path.parent.name == "bin":
            roots.append(path.parent.parent)
    return roots


def _checkout_of(shadow: Shadow) -> list[Path]:
    """The user's checkout (the common git directory's parent, when it is a `.git` folder)."""
    common = shadow.root.parent.parent.parent
    return [common.parent] if common.name == ".git" else []


def _existing_state_paths(preset: str, env: Mapping[str, str]) -> list[Path]:
    """The preset CLI's state paths, folders made when missing (the CLI would make them on first use,
    but cannot inside the read-only home); files only when they exist."""
    found = []
    for state in state_paths(preset, {**os.environ, **env}):
        if state.folder and not state.path.exists():
            try:
                state.path.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
        if state.path.exists():
            found.append(state.path)
    return found


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a long argument that only looks like a path
        return False
