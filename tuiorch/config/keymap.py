"""Keymap: action name -> Textual key. The UI binds these names; [keymap] may rebind any of them."""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from tuiorch.config.settings import Config
from tuiorch.config.values import ConfigError, show_value

MAIN_KEYMAP: dict[str, str] = {
    "help": "question_mark",
    "focus_next": "tab",
    "focus_previous": "shift+tab",
    "open": "enter",
    "move_up": "K",
    "move_down": "J",
    "move_top": "T",
    "priority_foundation": "1",
    "priority_feature": "2",
    "priority_polish": "3",
    "toggle_hold": "h",
    "add_task": "a",
    "grow_pool": "plus",
    "shrink_pool": "minus",
    "toggle_pause": "p",
    "cancel": "x",
    "retry": "r",
    "merge_now": "m",
    "send_back": "g",
    "conflicts": "c",
    "log": "l",
    "summary": "s",
    "diff": "d",
    "command_palette": "ctrl+p",
    "quit": "q",
}
CONFLICT_KEYMAP: dict[str, str] = {
    "take_ours": "o",
    "take_theirs": "t",
    "take_both": "b",
    "take_file_ours": "O",
    "take_file_theirs": "T",
    "undo": "u",
    "next_hunk": "n",
    "previous_hunk": "p",
    "show_base": "a",
    "edit": "e",
    "hand_to_agent": "g",
    "requeue": "R",
    "later": "escape",
}
DIFF_KEYMAP: dict[str, str] = {
    "diff_layout": "v",
    "diff_next_file": "n",
    "diff_previous_file": "p",
    "diff_merge": "m",
    "diff_send_back": "g",
    "diff_close": "escape",
}
DEFAULT_KEYMAP: dict[str, str] = {**MAIN_KEYMAP, **CONFLICT_KEYMAP, **DIFF_KEYMAP}


def resolved_keymap(config: Config) -> dict[str, str]:
    """Every action's key: the defaults with [keymap] overrides applied."""
    return {**DEFAULT_KEYMAP, **config.keymap}


def read_keymap(path: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The [keymap] table as action -> key, refusing unknown actions and empty keys."""
    keymap: dict[str, str] = {}
    for action, key in data.items():
        if action not in DEFAULT_KEYMAP:
            hint = get_close_matches(action, DEFAULT_KEYMAP, n=1)
            suggestion = f'; did you mean "{hint[0]}"?' if hint else ""
            raise ConfigError(path, "keymap", action, f"unknown action{suggestion}")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(path, "keymap", action, f'expected a key like "ctrl+k", got {show_value(key)}')
        keymap[action] = key.strip()
    return keymap


def check_keymap_clashes(config: Config, path: str) -> None:
    """Refuse two actions of one screen bound to the same key, naming the action the user rebound."""
    keymap = resolved_keymap(config)
    for group in (MAIN_KEYMAP, CONFLICT_KEYMAP, DIFF_KEYMAP):
        seen: dict[str, str] = {}
        for action in group:
            for key in keymap[action].split(","):
                key = key.strip()
                if key in seen:
                    changed = action if action in config.keymap else seen[key]
                    other = seen[key] if changed == action else action
                    raise ConfigError(
                        path, "keymap", changed, f"key {show_value(key)} is already bound to {other}"
                    )
                seen[key] = action
