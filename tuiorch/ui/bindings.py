"""The main screen's key bindings (DESIGN §9) and the `[keymap]` rebinding from tuiorch.toml.

Each binding's id is the action name a user writes in `[keymap]` (e.g. `move_up = "u"`).
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.binding import Binding

MAIN_BINDINGS: list[Binding] = [
    Binding("enter", "open", "Open", id="open", tooltip="Open the selected task or worker", show=False),
    Binding("K", "move_up", "Up", id="move_up", tooltip="Move the selected queued task up"),
    Binding("J", "move_down", "Down", id="move_down", tooltip="Move the selected queued task down"),
    Binding("T", "move_top", "Top", id="move_top", tooltip="Move the selected queued task to the top"),
    Binding("1", "priority('foundation')", "Foundation", id="priority_foundation",
            tooltip="Set the selected task's priority to foundation", show=False),
    Binding("2", "priority('feature')", "Feature", id="priority_feature",
            tooltip="Set the selected task's priority to feature", show=False),
    Binding("3", "priority('polish')", "Polish", id="priority_polish",
            tooltip="Set the selected task's priority to polish", show=False),
    Binding("h", "hold", "Hold", id="hold", tooltip="Hold or release the selected queued task"),
    Binding("a", "add_task", "Add", id="add_task", tooltip="Add a task to the queue and the task file"),
    Binding("plus", "grow", "+Pool", id="grow", tooltip="Grow the pool by one worker"),
    Binding("minus", "shrink", "-Pool", id="shrink", tooltip="Shrink the pool by one worker"),
    Binding("p", "pause", "Pause", id="pause", tooltip="Pause or resume starting new tasks"),
    Binding("x", "cancel", "Cancel", id="cancel", tooltip="Cancel the selected worker (asks first)"),
    Binding("r", "retry", "Retry", id="retry", tooltip="Retry a failed or cancelled task"),
    Binding("c", "conflict", "Conflict", id="conflict", tooltip="Open the conflict modal"),
    Binding("l", "log", "Log", id="log", tooltip="Full log of the selected task"),
    Binding("s", "summary", "Summary", id="summary", tooltip="Every task, its end state and the commits on main"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit (asks while workers run)"),
    Binding("ctrl+c", "interrupt", "Interrupt", id="interrupt", show=False, priority=True,
            tooltip="Stop every agent now and exit with status 130"),
]

#: Every action a `[keymap]` table may rebind.
KEYMAP_ACTIONS: tuple[str, ...] = tuple(b.id for b in MAIN_BINDINGS if b.id)


class KeymapError(ValueError):
    """A `[keymap]` entry that names no action. str() is the user-facing message."""


def validate_keymap(keymap: Mapping[str, str], source: str = "tuiorch.toml") -> dict[str, str]:
    """Check a `[keymap]` table (action -> key) and return it as a Textual keymap (binding id -> key)."""
    result: dict[str, str] = {}
    for action, key in keymap.items():
        if action not in KEYMAP_ACTIONS:
            raise KeymapError(
                f"{source}: [keymap] {action}: unknown action (known: {', '.join(KEYMAP_ACTIONS)})"
            )
        if not isinstance(key, str) or not key.strip():
            raise KeymapError(f"{source}: [keymap] {action}: expected a key like \"u\" or \"ctrl+u\", got {key!r}")
        result[action] = key.strip()
    return result
