"""Persisted run state: `<git_dir>/tuiorch/state.toml` (never committed), the agent logs folder, and
the codec between a run's queue and that file (`dump`, `restore`).

The file is replaced atomically (temp file in the same folder, fsync, rename, fsync of the folder), so
a crash or power cut leaves either the old state or the new one, never a torn file.

TOML has no null: `save_state` drops None values (via `clean_for_toml`), so a key that is absent on
load means "no value". Callers read optional fields with `.get()`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import tomli_w

from tuiorch.agent_output import Usage
from tuiorch.model.status import TaskStatus
from tuiorch.tasks import Priority

if TYPE_CHECKING:
    from tuiorch.model.record import TaskRecord
    from tuiorch.queue import RunQueue

STATE_DIR = "tuiorch"
STATE_FILE = "state.toml"
LOGS_DIR = "logs"
_TEMP_PREFIX = ".state.toml."
_STALE_TEMP_AGE = 600.0  # seconds


class StateError(Exception):
    """The run state can't be read or written; str() names the file and what to do."""


def state_dir(git_dir: Path) -> Path:
    return git_dir / STATE_DIR


def state_path(git_dir: Path) -> Path:
    return state_dir(git_dir) / STATE_FILE


def log_dir(git_dir: Path) -> Path:
    """`<git_dir>/tuiorch/logs`, made if missing."""
    path = state_dir(git_dir) / LOGS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def clean_for_toml(obj: Any) -> Any:
    """`obj` made writable as TOML: None values dropped (from dicts and lists), tuples and sets to lists
    (sets sorted, for a stable file), enums to their values, paths to strings."""
    for kinds, clean in _CLEANERS:
        if isinstance(obj, kinds):
            return clean(obj)
    return obj


def _clean_mapping(obj: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(key): clean_for_toml(value) for key, value in obj.items() if value is not None}


def _clean_items(obj: Iterable[Any]) -> list[Any]:
    return [clean_for_toml(item) for item in obj if item is not None]


def _clean_set(obj: set[Any] | frozenset[Any]) -> list[Any]:
    return sorted(_clean_items(obj))


def _clean_enum(obj: Enum) -> Any:
    return clean_for_toml(obj.value)


#: How clean_for_toml cleans each kind of value, tried in order; anything else stays as it is.
_CLEANERS: tuple[tuple[Any, Callable[[Any], Any]], ...] = (
    (Mapping, _clean_mapping),
    (list | tuple, _clean_items),
    (set | frozenset, _clean_set),
    (Enum, _clean_enum),
    (PurePath, str),
)


def save_state(git_dir: Path, data: dict[str, Any]) -> None:
    """Write `data` (None values dropped) to state.toml atomically; StateError if it can't be written.

    One save; a run, which saves again and again, keeps a StateWriter instead."""
    StateWriter(state_path(git_dir)).save(data)


class StateWriter:
    """Saves one state file, again and again. A run saves at every transition of any task, and between two
    saves most task entries stay as they were: each entry's TOML is kept, keyed by the entry's repr (which
    tells True from 1 and 1 from 1.0, as TOML does), and only the entries that changed are encoded again
    (encoding every entry each time cost about a millisecond per save with 20 tasks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: The repr of the top-level values other than the tasks, and their TOML.
        self._head: tuple[str, str] = ("", "")
        #: task id -> (the repr of its entry, its TOML).
        self._tasks: dict[str, tuple[str, str]] = {}
        self._swept = False

    def save(self, data: dict[str, Any]) -> None:
        try:
            # Serialise first: a value TOML can't hold fails here, before any file is touched.
            payload = self._encode(data).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise StateError(f"{self.path}: cannot save run state: {exc}") from exc
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.path, payload)
            if not self._swept:
                # Temp files are left only by a writer killed before its rename: an earlier process.
                _remove_stale_temp_files(self.path.parent)
                self._swept = True
        except OSError as exc:
            raise StateError(f"{self.path}: cannot save run state: {exc.strerror or exc}") from exc

    def _encode(self, data: Mapping[str, Any]) -> str:
        tasks = _task_tables(data)
        if tasks is None:
            return tomli_w.dumps(clean_for_toml(data))
        head = {key: value for key, value in data.items() if key != "tasks"}
        if (key := repr(head)) != self._head[0]:
            self._head = (key, tomli_w.dumps(clean_for_toml(head)))
        self._tasks = {str(task_id): self._entry_toml(str(task_id), entry) for task_id, entry in tasks.items()}
        return "\n".join([self._head[1], *(text for _, text in self._tasks.values())])

    def _entry_toml(self, name: str, entry: Mapping[str, Any]) -> tuple[str, str]:
        """(the repr of a task's entry, its TOML): kept from the last save while the entry is the same."""
        key = repr(entry)
        known = self._tasks.get(name)
        return known if known is not None and known[0] == key else (key, _task_toml(name, entry))


def _task_tables(data: Mapping[str, Any]) -> Mapping[Any, Mapping[str, Any]] | None:
    """The state's tasks when they are a table of tables (encoded one by one), else None."""
    tasks = data.get("tasks")
    if not tasks or not isinstance(tasks, Mapping) or not all(isinstance(e, Mapping) for e in tasks.values()):
        return None
    return tasks


def _task_toml(task_id: str, entry: Mapping[str, Any]) -> str:
    text = tomli_w.dumps({"tasks": {task_id: clean_for_toml(entry)}})
    # An entry whose values are all tables prints no header of its own: one is added, so the task is in
    # the file even then (as a whole encoding of the state would have it).
    header = tomli_w.dumps({"tasks": {task_id: {"x": 0}}}).split("\n", 1)[0]
    return text if text.startswith(header + "\n") else f"{header}\n{text}"


def _write_atomically(path: Path, payload: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    # The rename itself is only durable once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _remove_stale_temp_files(folder: Path) -> None:
    """Drop temp files left by a writer killed before its rename (old enough not to be mid-write)."""
    cutoff = time.time() - _STALE_TEMP_AGE
    for leftover in folder.glob(_TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def load_state(git_dir: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none; StateError (naming the file) if it is unreadable."""
    path = state_path(git_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read run state: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StateError(
            f"{path}: run state is corrupt ({exc}); move or delete the file to start without it"
        ) from exc


# ---------------------------------------------------------------------- the run's codec


def dump(queue: RunQueue, *, base: str, base_at_start: str | None, workers: int, finished: bool) -> dict[str, Any]:
    """The run state to save: the queue's order and every task worth an entry."""
    return {
        "version": 1,
        "base": base,
        "base_at_start": base_at_start,
        "finished": finished,
        "order": queue.order,
        "workers": workers,
        # A task still waiting untouched in the queue needs no entry: 10,000 of them would make
        # every save slow. The order above keeps its place.
        "tasks": {task_id: _task_entry(rec) for task_id, rec in queue.records.items() if _worth_saving(rec)},
    }


def _worth_saving(rec: TaskRecord) -> bool:
    return (
        rec.status is not TaskStatus.QUEUED
        or rec.held
        or rec.priority_override
        or rec.attempts > 0
        or rec.branch is not None
    )


def _task_entry(rec: TaskRecord) -> dict[str, object]:
    return {
        # The running agent's runner and its own name for the run, for a restarted tuiorch to find it.
        **({"runner": rec.attachment.runner, "ref": rec.attachment.ref} if rec.attachment is not None else {}),
        "status": rec.status.value,
        "title": rec.task.title,
        "attempts": rec.attempts,
        "branch": rec.branch,
        "worktree": str(rec.worktree) if rec.worktree else None,
        "base_sha": rec.base_sha,
        "tip": rec.tip,
        "pgid": rec.pgid,
        "confined": rec.confined,
        "where": rec.where,
        "commit": rec.commit,
        "held": rec.held,
        "priority": rec.task.priority.label if rec.priority_override else None,
        "started": rec.started,
        "ended": rec.ended,
        "reason": rec.reason,
        "paths": list(rec.paths),
        "requeues": rec.requeues,
        "usage": rec.usage.to_dict() if rec.usage is not None else None,
    }


def restore(queue: RunQueue, data: Mapping[str, Any]) -> list[TaskRecord]:
    """Give `queue` the saved order, holds, priorities and usage, and the merged tasks' facts.

    Statuses are not the codec's to write: the records saved as merged are returned for the
    orchestrator to mark. Everything else a task had waits for the recovery, which trusts git.
    """
    queue.restore_order(data.get("order", []))
    merged = []
    for task_id, entry in data.get("tasks", {}).items():
        rec = queue.records.get(task_id)
        if rec is None:
            continue
        rec.held = bool(entry.get("held", False))
        if priority := entry.get("priority"):
            queue.set_priority(task_id, Priority.parse(priority))
        rec.usage = Usage.from_dict(entry.get("usage"))
        if entry.get("status") == TaskStatus.MERGED.value:
            rec.commit = entry.get("commit")
            rec.started, rec.ended = entry.get("started"), entry.get("ended")
            rec.attempts = int(entry.get("attempts", 0))
            merged.append(rec)
    return merged


def entries_in_order(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the saved order with its entry; a task still waiting untouched has none of its own."""
    saved = data.get("tasks", {})
    return {task_id: saved.get(task_id, {"status": TaskStatus.QUEUED.value}) for task_id in data.get("order", [])}
