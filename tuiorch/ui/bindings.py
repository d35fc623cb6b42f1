"""The main screen's key bindings and the `[keymap]` rebinding from tuiorch.toml.

Each binding's id is the action name a user writes in `[keymap]` (e.g. `move_up = "u"`); the names are
config.DEFAULT_KEYMAP's, which validates the table when tuiorch.toml is read.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.binding import Binding

#: Help and quit come first: the footer is cut on the right in a narrow terminal, and these two must show.
MAIN_BINDINGS: list[Binding] = [
    Binding("question_mark", "help", "Help", id="help", priority=True,
            tooltip="Every key of this screen and what it does"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit (asks while workers run); prints the run's summary"),
    Binding("tab", "app.focus_next", "Next pane", id="focus_next", show=False,
            tooltip="Move focus to the next pane"),
    Binding("shift+tab", "app.focus_previous", "Previous pane", id="focus_previous", show=False,
            tooltip="Move focus to the previous pane"),
    Binding("enter", "open", "Open", id="open", tooltip="Open the selected task or worker", show=False),
    Binding("K", "move_up", "Up", id="move_up", tooltip="Move the selected queued task up"),
    Binding("J", "move_down", "Down", id="move_down", tooltip="Move the selected queued task down"),
    Binding("T", "move_top", "Top", id="move_top", tooltip="Move the selected queued task to the top", show=False),
    Binding("1", "priority('foundation')", "Foundation", id="priority_foundation",
            tooltip="Set the selected task's priority to foundation", show=False),
    Binding("2", "priority('feature')", "Feature", id="priority_feature",
            tooltip="Set the selected task's priority to feature", show=False),
    Binding("3", "priority('polish')", "Polish", id="priority_polish",
            tooltip="Set the selected task's priority to polish", show=False),
    Binding("h", "toggle_hold", "Hold", id="toggle_hold", tooltip="Hold or release the selected queued task"),
    Binding("a", "add_task", "Add", id="add_task", tooltip="Add a task to the queue and the task file"),
    Binding("plus", "grow_pool", "Pool", id="grow_pool", tooltip="Grow the pool by one worker"),
    Binding("minus", "shrink_pool", "Pool", id="shrink_pool", tooltip="Shrink the pool by one worker"),
    Binding("p", "toggle_pause", "Pause", id="toggle_pause", tooltip="Pause or resume starting new tasks"),
    Binding("x", "cancel", "Cancel", id="cancel", tooltip="Cancel the selected worker (asks first)"),
    Binding("r", "retry", "Retry", id="retry",
            tooltip="Retry a failed or cancelled task; re-run the [merge] check of a check-failed one"),
    Binding("m", "merge_now", "Merge", id="merge_now",
            tooltip="Merge a finished task now ([merge] auto = false waits for this)"),
    Binding("g", "send_back", "Send back", id="send_back",
            tooltip="Send a check-failed task back to its agent with the failure; a conflict to the resolver agent"),
    Binding("c", "conflicts", "Conflict", id="conflicts", tooltip="Open the conflict modal"),
    Binding("l", "log", "Log", id="log", tooltip="Full log of the selected task"),
    Binding("d", "diff", "Diff", id="diff",
            tooltip="What the selected task changed (live while its agent works); merge it or send it back"),
    Binding("s", "summary", "Summary", id="summary", tooltip="Every task, its end state and the commits on main"),
    Binding("ctrl+p", "app.command_palette", "Commands", id="command_palette", show=False,
            tooltip="Every action, searchable"),
    Binding("ctrl+c", "interrupt", "Interrupt", id="interrupt", show=False, priority=True,
            tooltip="Stop every agent now and exit with status 130"),
]

#: Every action a `[keymap]` table may rebind: the main screen's, the conflict modal's and the diff screen's.
def keymap_actions() -> tuple[str, ...]:
    from tuiorch.ui.screens.conflict import ConflictScreen
    from tuiorch.ui.screens.diff import DiffScreen

    bindings = [*MAIN_BINDINGS, *ConflictScreen.BINDINGS, *DiffScreen.BINDINGS]
    return tuple(b.id for b in bindings if isinstance(b, Binding) and b.id)


class KeymapError(ValueError):
    """A `[keymap]` entry that names no action. str() is the user-facing message."""


def validate_keymap(keymap: Mapping[str, str], source: str = "tuiorch.toml") -> dict[str, str]:
    """Check a `[keymap]` table (action -> key) and return it as a Textual keymap (binding id -> key)."""
    known = keymap_actions()
    result: dict[str, str] = {}
    for action, key in keymap.items():
        if action not in known:
            raise KeymapError(f"{source}: [keymap] {action}: unknown action (known: {', '.join(known)})")
        if not isinstance(key, str) or not key.strip():
            raise KeymapError(f"{source}: [keymap] {action}: expected a key like \"u\" or \"ctrl+u\", got {key!r}")
        result[action] = key.strip()
    return result
