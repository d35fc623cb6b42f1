"""The task model and its file formats under one import path: `from tuiorch.tasks import Task, load_tasks`.

Each name lives in the tuiorch.taskfile module that owns its job; this module only gathers them.
"""

from tuiorch.taskfile.files import append_task_md, load_tasks, write_priority
from tuiorch.taskfile.markdown import parse_tasks_md, render_task_md, render_tasks_md, with_priority_md
from tuiorch.taskfile.model import (
    Priority,
    Task,
    TaskFileError,
    find_cycle,
    id_problem,
    nearest_key,
    validate_tasks,
)
from tuiorch.taskfile.toml import parse_tasks_toml, with_priority_toml

__all__ = [
    "Priority",
    "Task",
    "TaskFileError",
    "append_task_md",
    "find_cycle",
    "id_problem",
    "load_tasks",
    "nearest_key",
    "parse_tasks_md",
    "parse_tasks_toml",
    "render_task_md",
    "render_tasks_md",
    "validate_tasks",
    "with_priority_md",
    "with_priority_toml",
    "write_priority",
]
