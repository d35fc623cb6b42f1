"""Live reload of the task file: the engine's watcher (the headless front end uses it too)."""

from tuiorch.taskwatch import only, task_file_changes

__all__ = ["only", "task_file_changes"]
