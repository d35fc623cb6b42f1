"""Persisted run state: `<git_dir>/tuiorch/state.toml` (never committed) and the agent logs folder.

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
from collections.abc import Mapping
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import tomli_w

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
    if isinstance(obj, Mapping):
        return {str(key): clean_for_toml(value) for key, value in obj.items() if value is not None}
    if isinstance(obj, list | tuple):
        return [clean_for_toml(item) for item in obj if item is not None]
    if isinstance(obj, set | frozenset):
        return sorted(clean_for_toml(item) for item in obj if item is not None)
    if isinstance(obj, Enum):
        return clean_for_toml(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def save_state(git_dir: Path, data: dict[str, Any]) -> None:
    """Write `data` (None values dropped) to state.toml atomically; StateError if it can't be written."""
    path = state_path(git_dir)
    try:
        # Serialise first: a value TOML can't hold fails here, before any file is touched.
        payload = tomli_w.dumps(clean_for_toml(data)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StateError(f"{path}: cannot save run state: {exc}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, payload)
        _remove_stale_temp_files(path.parent)
    except OSError as exc:
        raise StateError(f"{path}: cannot save run state: {exc.strerror or exc}") from exc


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
