"""The runner a configuration asks for (`[runner] kind`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tuiorch.config import Config
from tuiorch.confine.attempts import Confiner
from tuiorch.gitops import GitRepo
from tuiorch.runners.base import Runner
from tuiorch.runners.local import LocalRunner


def make_runner(
    config: Config,
    git: GitRepo,
    root: Path,
    *,
    worktrees: Callable[[str], Path],
    prompts: Path,
    scratch: Sequence[str],
    programs: Sequence[str],
    confiner: Confiner | None = None,
) -> Runner:
    """The runner the configuration asks for. `worktrees(task_id)` is a task's worktree folder (the
    folder of all of them for ""); `programs` are what a node must have to run the agent; `confiner`
    puts local agents in their sandboxes."""
    if config.runner.kind == "ray":
        # Imported here: Ray is an optional extra, loaded only by a run that asks for it.
        from tuiorch.runners.ray.runner import make_ray_runner

        return make_ray_runner(root, config, programs, scratch)
    return LocalRunner(
        git,
        worktrees(""),
        prompts,
        task_folder=worktrees,
        reuse=config.slots.reuse,
        keep=config.slots.keep,
        scratch=scratch,
        keep_at_end=config.slots.keep_at_end,
        slots=config.workers,
        confiner=confiner,
    )
