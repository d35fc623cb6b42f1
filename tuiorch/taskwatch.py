"""Live reload of the task file.

The folder is watched, not the file: editors save by writing a temp file and renaming it over the
original, and a watch on the file itself misses most of those.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from watchfiles import Change, awatch


def only(task_file: Path):  # noqa: ANN201 - watchfiles' filter signature
    name = task_file.name

    def accept(_change: Change, path: str) -> bool:
        return Path(path).name == name

    return accept


async def task_file_changes(task_file: Path, stop: asyncio.Event | None = None) -> AsyncIterator[None]:
    """Yield once per burst of changes to `task_file` (edits, replaces, re-creation)."""
    async for _changes in awatch(task_file.parent, watch_filter=only(task_file), debounce=400, step=50,
                                 stop_event=stop):
        yield
