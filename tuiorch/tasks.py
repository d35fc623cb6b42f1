"""Task model; parse and validate TASKS.md / tasks.toml."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class Priority(IntEnum):
    """Lower value starts first."""

    FOUNDATION = 0
    FEATURE = 1
    POLISH = 2

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls[text.strip().upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    description: str = ""
    depends: tuple[str, ...] = ()
    priority: Priority = Priority.FEATURE
    touches: tuple[str, ...] = ()
    type: str = "feat"
    #: Where the task was read from, for error messages ("TASKS.md", 12).
    source: str = ""
    line: int = 0


class TaskFileError(Exception):
    """Bad task input. str() is the user-facing message: "TASKS.md:12: duplicate task id '3'"."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")
