"""What a configuration value looks like to the user: ConfigError, durations, and values shown as TOML."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

CONFIG_FILE = "tuiorch.toml"


class ConfigError(Exception):
    """Bad configuration. str() is the user-facing message: 'tuiorch.toml: [agent] timeout: expected ...'."""

    def __init__(self, path: str | Path, table: str | None, key: str | None, message: str) -> None:
        self.path = str(path)
        self.table = table
        self.key = key
        self.message = message
        where = self.path
        if table:
            where += f": [{table}]"
        if key:
            where += f" {key}" if table else f": {key}"
        super().__init__(f"{where}: {message}")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from "90s", "10m", "1h", "1h30m", "500ms" or a plain number of seconds; 0 means disabled.

    Raises ValueError with a message fit for the user.
    """
    seconds = _duration_seconds(value)
    if not math.isfinite(seconds):
        raise ValueError(f'expected a duration like "60m" or seconds, got {show_value(value)}')
    if seconds < 0:
        raise ValueError(f"expected a duration that is not negative, got {show_value(value)}")
    return seconds


def _duration_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'expected a duration like "60m" or seconds, got {show_value(value)}')
    if not isinstance(value, str):
        return float(value)
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"expected a duration that is not negative, got {show_value(value)}")
    try:
        return float(text)
    except ValueError:
        return _parse_duration_text(text, value)


def _parse_duration_text(text: str, original: str) -> float:
    position = 0
    total = 0.0
    compact = re.sub(r"\s+", "", text)
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        raise ValueError(
            f'expected a duration like "60m", "90s", "1h30m" or seconds, got {show_value(original)}'
        )
    return total


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, for writing: 5400 -> "1h30m", 0.5 -> "500ms", 0 -> "0"."""
    if seconds <= 0:
        return "0"
    millis = round(seconds * 1000)
    whole, ms = divmod(millis, 1000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s"), (ms, "ms")) if n]
    return "".join(parts) or "0"


@functools.singledispatch
def show_value(value: object) -> str:
    """A value as it would be written in TOML, for error messages."""
    return repr(value)


@show_value.register
def _show_bool(value: bool) -> str:
    return "true" if value else "false"


@show_value.register
def _show_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@show_value.register
def _show_table(value: dict) -> str:  # type: ignore[type-arg]
    return "a table"


@show_value.register
def _show_list(value: list) -> str:  # type: ignore[type-arg]
    return "[" + ", ".join(show_value(item) for item in value) + "]"
