"""Which queued tasks start now, and why the others wait. Pure functions, no I/O.

A task is eligible when it is not held, every dependency is merged, its `touches` overlap no running
task's (nor a task picked earlier in the same call), and none of the predicted-conflict `avoid_paths`.
Eligible tasks start by priority tier, then queue order, until the free slots are used.

Paths: "./src/", "src/" and "src" are the same; a path covers everything under it ("src" covers
"src/x.py", not "src/ab"); "." covers the whole tree. A glob ("src/*.py") counts as its directory
("src"), which can only over-estimate an overlap. A task with no `touches` overlaps nothing.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Collection, Iterable, Sequence

from tuiorch.tasks import Task

ROOT = "."
_GLOB_CHARS = frozenset("*?[")

HELD = "held"
POOL_FULL = "pool full"


def normalise_path(path: str) -> str:
    """The canonical form of a touches path: relative, no "./", no trailing "/", globs cut to their dir."""
    cleaned = path.strip().replace("\\", "/").lstrip("/")
    parts = []
    for part in cleaned.split("/"):
        if _GLOB_CHARS.intersection(part):
            break
        parts.append(part)
    return posixpath.normpath("/".join(parts)) if parts else ROOT


def _self_and_ancestors(path: str) -> Iterable[str]:
    """ "a/b/c" -> "a/b/c", "a/b", "a", "." (the root covers everything)."""
    while path != ROOT:
        yield path
        cut = path.rfind("/")
        path = path[:cut] if cut > 0 else ROOT
    yield ROOT


class _PathIndex:
    """Paths claimed by tasks, answering "which task's path overlaps this one?" in O(path depth)."""

    def __init__(self, reason: str = "{}") -> None:
        #: Why a task whose paths overlap waits, the owner in place of {}.
        self.reason = reason
        self._exact: dict[str, str] = {}  # claimed path -> first task id claiming it
        self._under: dict[str, str] = {}  # every ancestor-or-self of a claimed path -> a task id

    def add(self, paths: Iterable[str], owner: str) -> None:
        for path in paths:
            self._exact.setdefault(path, owner)
            for ancestor in _self_and_ancestors(path):
                self._under.setdefault(ancestor, owner)

    def overlap(self, paths: Iterable[str]) -> str | None:
        """The owner of a claimed path that overlaps one of `paths`, else None."""
        for path in paths:
            # `path` equals or contains a claimed path...
            if (owner := self._under.get(path)) is not None:
                return owner
            # ...or a claimed path contains `path`.
            for ancestor in _self_and_ancestors(path):
                if (owner := self._exact.get(ancestor)) is not None:
                    return owner
        return None

    def blocks(self, paths: Iterable[str]) -> str | None:
        """The reason a task touching `paths` waits, or None when none of them overlaps."""
        owner = self.overlap(paths)
        return None if owner is None else self.reason.format(owner)


def touches_overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """True when a path in `a` equals, contains or lies inside a path in `b`."""
    index = _PathIndex()
    index.add((normalise_path(p) for p in b), "b")
    return index.overlap(normalise_path(p) for p in a) is not None


@functools.lru_cache(maxsize=1 << 16)
def _normalised(paths: tuple[str, ...]) -> tuple[str, ...]:
    # Cached: the same tasks' touches are normalised again on every scheduling round.
    return tuple(dict.fromkeys(normalise_path(p) for p in paths))


def plan(
    queue: Sequence[Task],
    running: Sequence[Task],
    merged: Collection[str],
    free_slots: int,
    held: Collection[str] = (),
    avoid_paths: Collection[str] = (),
    *,
    stop_when_full: bool = False,
) -> tuple[list[Task], dict[str, str | None]]:
    """The tasks to start now (in start order) and every queued task's wait reason (None: starts now).

    One pass over the queue: O(len(queue) * path depth), plus a sort by priority. With stop_when_full
    the pass ends once the free slots are taken (reasons then cover only the tasks looked at).
    """
    merged_ids = set(merged)
    held_ids = set(held)
    picked_paths = _PathIndex("touches overlap with starting task {}")
    # In the order a task's wait reason is told.
    indexes = (_claimed_by(running), _avoided(avoid_paths), picked_paths)

    picked: list[Task] = []
    reasons: dict[str, str | None] = {}
    # sorted() is stable, so equal priorities keep queue order.
    for task in sorted(queue, key=lambda t: t.priority):
        reason = _blocker(task, merged_ids, held_ids, indexes)
        if reason is None and len(picked) >= free_slots:
            reason = POOL_FULL
        reasons[task.id] = reason
        if reason is None:
            picked.append(task)
            picked_paths.add(_normalised(tuple(task.touches)), task.id)
            if stop_when_full and len(picked) >= free_slots:
                break
    return picked, reasons


def _claimed_by(running: Sequence[Task]) -> _PathIndex:
    """The paths the running tasks touch."""
    index = _PathIndex("touches overlap with running task {}")
    for task in running:
        index.add(_normalised(tuple(task.touches)), task.id)
    return index


def _avoided(avoid_paths: Collection[str]) -> _PathIndex:
    """The predicted-conflict paths, each its own owner."""
    index = _PathIndex("predicted conflict on {}")
    for path in avoid_paths:
        index.add([normalise_path(path)], path)
    return index


def _blocker(task: Task, merged: set[str], held: set[str], indexes: Sequence[_PathIndex]) -> str | None:
    """Why `task` cannot start whatever the free slots, or None."""
    if task.id in held:
        return HELD
    unmerged = [dep for dep in task.depends if dep not in merged]
    if unmerged:
        return f"waiting for {', '.join(unmerged)} (not merged)"
    paths = _normalised(tuple(task.touches))
    for index in indexes:
        if (reason := index.blocks(paths)) is not None:
            return reason
    return None


def pick_tasks(
    queue: Sequence[Task],
    running: Sequence[Task],
    merged: Collection[str],
    free_slots: int,
    held: Collection[str] = (),
    avoid_paths: Collection[str] = (),
) -> list[Task]:
    """The queued tasks to start now, in start order (priority tier, then queue order)."""
    if free_slots <= 0:
        return []
    return plan(queue, running, merged, free_slots, held, avoid_paths, stop_when_full=True)[0]


def wait_reasons(
    queue: Sequence[Task],
    running: Sequence[Task],
    merged: Collection[str],
    free_slots: int,
    held: Collection[str] = (),
    avoid_paths: Collection[str] = (),
) -> dict[str, str | None]:
    """Every queued task's wait reason in one pass (for the queue pane; calling wait_reason per row
    would be quadratic)."""
    return plan(queue, running, merged, free_slots, held, avoid_paths)[1]


def wait_reason(
    task: Task,
    queue: Sequence[Task],
    running: Sequence[Task],
    merged: Collection[str],
    free_slots: int,
    held: Collection[str] = (),
    avoid_paths: Collection[str] = (),
) -> str | None:
    """Why `task` does not start now ("held", "waiting for 2, 5 (not merged)", "touches overlap with
    running task 5", "predicted conflict on src/x.py", "pool full"), or None if pick_tasks would start it.
    A task not in `queue` is judged as if it were queued last."""
    if all(queued.id != task.id for queued in queue):
        queue = [*queue, task]
    return wait_reasons(queue, running, merged, free_slots, held, avoid_paths)[task.id]
