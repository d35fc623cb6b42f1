"""The app as the main screen sees it: the screen calls these, and the app (which imports the screen)
provides them, so neither module imports the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tuiorch.hunks import Resolution
    from tuiorch.tasks import Task
    from tuiorch.ui.bridge import Bridge


class Host(Protocol):
    #: Engine output waiting to be written into the panes.
    bridge: Bridge
    #: Source of "now" for elapsed times (frozen in tests and screenshots).
    clock: Callable[[], float]
    #: Hide values that differ run to run (snapshots only).
    redact: bool
    #: task -> the hunk choices made in the conflict modal, kept across closing and reopening it.
    resolutions: dict[str, Resolution]

    def begin(self) -> None:
        """Start the run once the main screen is up."""

    def command(self, method: Callable[..., Any], *args: Any) -> bool:
        """Call a plain engine command; False (and a notification) if it was refused."""

    def run_command(self, coroutine: Awaitable[Any]) -> object:
        """Run an async engine command in the background; its errors become notifications."""

    def write_priority(self, task_id: str) -> None:
        """Write the task's priority into the task file."""

    def save_new_task(self, task: Task) -> str | None:
        """Append a task to the task file and queue it; an error message on failure."""

    def task_file_name(self) -> str:
        """Where an added task goes, in words."""

    def action_help(self) -> None: ...

    def action_quit(self) -> None: ...

    def action_interrupt(self) -> None: ...
