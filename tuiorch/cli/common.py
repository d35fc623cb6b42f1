"""What every subcommand shares: the usage error that exits 2, exit codes, opening the repository, and
reading the configuration and the task file a run needs."""

from __future__ import annotations

from pathlib import Path

from tuiorch.config import Config, ConfigError, load_config, missing_agent_program
from tuiorch.confine.sandbox import decide
from tuiorch.git import GitError, GitRepo
from tuiorch.prompt import PromptError, load_template
from tuiorch.tasks import Task, TaskFileError, load_tasks

EXIT_OK = 0
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad usage, config, task file or repository state: exit 2 with this message."""


#: Environment variables that point every git started from here at another repository, index or store.
REDIRECTING_GIT_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
)


def open_repo(path: Path) -> GitRepo:
    try:
        return GitRepo(path)
    except GitError as exc:
        raise UsageError(str(exc)) from None


def load_run_inputs(root: Path, workers: int | None) -> tuple[Config, list[Task], Path]:
    """The configuration, the tasks and the task file of a run, or a UsageError saying what is wrong."""
    config = _load_config(root, workers)
    task_file = root / config.tasks
    tasks = _load_tasks(task_file)
    for template in (config.prompt_template, config.resolve_template):
        try:
            load_template(template, root=root)
        except PromptError as exc:
            raise UsageError(f"{exc}; fix it or clear [prompt] in {root / 'tuiorch.toml'}") from None
    return config, tasks, task_file


def _load_config(root: Path, workers: int | None) -> Config:
    try:
        config = load_config(root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if workers is not None:
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        config.workers = workers
    missing = missing_agent_program(config)
    if missing:
        raise UsageError(f"{missing}; install it or set [agent] preset in {root / 'tuiorch.toml'}")
    try:
        # `confine = "on"` on a machine where bubblewrap cannot confine: refused before anything starts
        # (Ray nodes are asked as each agent is placed there).
        if config.runner.kind == "local":
            decide(config.agent.confine, config.agent.preset, config.agent.writable, root / "tuiorch.toml")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return config


def _load_tasks(task_file: Path) -> list[Task]:
    if not task_file.exists():
        raise UsageError(f"{task_file}: no task file; write one or run `tuiorch init`")
    try:
        tasks = load_tasks(task_file)
    except TaskFileError as exc:
        raise UsageError(str(exc)) from None
    if not tasks:
        raise UsageError(f"{task_file}: no tasks found; each task starts with a heading `## Task 1: Title`")
    return tasks
