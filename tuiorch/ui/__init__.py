"""The Textual front end. Only this package may import textual."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuiorch.config import Config
    from tuiorch.tasks import Task


def run_app(root: Path, config: Config, tasks: list[Task], task_file: Path | None) -> int:
    """Run the TUI until the user quits. Exit code: 0 all merged, 1 not, 2 bad keymap, 130 ^C."""
    from tuiorch.ui.app import INTERRUPTED, TuiorchApp
    from tuiorch.ui.bindings import KeymapError

    try:
        app = TuiorchApp(root, config, tasks, task_file)
    except KeymapError as exc:
        print(f"tuiorch: {exc}", file=sys.stderr)
        return 2
    try:
        result = app.run()
    except KeyboardInterrupt:
        return INTERRUPTED
    if app.farewell_text:
        print(app.farewell_text)
    if result is None:
        return app.return_code or 1
    return result


__all__ = ["run_app"]
