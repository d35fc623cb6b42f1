"""What a task changed: its diff against the merge base, as plain data the review screen renders.

tuiorch.git (git/diff.py) builds these from git objects; everything here is pure (no git, no Textual).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ADDED, REMOVED, CONTEXT = "added", "removed", "context"


@dataclass(frozen=True)
class DiffLine:
    kind: str  # ADDED, REMOVED or CONTEXT
    old: int | None  # line number on the merge base's side (None for an added line)
    new: int | None  # line number on the task's side (None for a removed line)
    text: str  # without its newline


@dataclass(frozen=True)
class DiffHunk:
    header: str  # "@@ -10,4 +10,6 @@ def f():"
    lines: tuple[DiffLine, ...]


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "added", "deleted", "modified", "renamed", ...
    added: int
    removed: int
    hunks: tuple[DiffHunk, ...] = ()
    binary: bool = False
    old_path: str | None = None
    #: Lines past the screen's limit were left out (the counts above are still whole).
    truncated: bool = False


@dataclass(frozen=True)
class TaskDiff:
    """A task's changes: `source` says what was compared ("branch task-3 + uncommitted work", ...)."""

    base: str
    source: str
    files: tuple[FileDiff, ...] = ()

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    @property
    def stat(self) -> str:
        return change_stat(len(self.files), self.added, self.removed)


def change_stat(files: int, added: int, removed: int) -> str:
    """'3 files +40 −12', '1 file +1 −0', 'no changes'."""
    if not files:
        return "no changes"
    return f"{files} file{'s' if files != 1 else ''} +{added} −{removed}"


Pair = tuple[DiffLine | None, DiffLine | None]


def side_by_side(lines: Sequence[DiffLine]) -> list[Pair]:
    """A hunk's lines as (merge base, task) rows: context on both sides, each run of removed lines next to
    the added lines that follow it, the shorter side padded with None."""
    rows: list[Pair] = []
    removed: list[DiffLine] = []
    added: list[DiffLine] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            rows.append((removed[i] if i < len(removed) else None, added[i] if i < len(added) else None))
        removed.clear()
        added.clear()

    for line in lines:
        if line.kind == CONTEXT:
            flush()
            rows.append((line, line))
        elif line.kind == REMOVED:
            if added:
                flush()
            removed.append(line)
        else:
            added.append(line)
    flush()
    return rows
