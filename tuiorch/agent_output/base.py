"""What every output parser shares: progress and usage as reported, the ParsedLine each line becomes, the
parser protocol, the plain-text parser and the JSON-lines plumbing, and small readers of untrusted JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Progress:
    """A reported "PROGRESS: 3/5 writing tests" (done/total) or "PROGRESS: 60%" (percent)."""

    percent: float | None
    done: int | None
    total: int | None
    text: str

    @property
    def fraction(self) -> float | None:
        """0..1 for a progress bar, whichever form was reported."""
        if self.percent is not None:
            return min(max(self.percent / 100.0, 0.0), 1.0)
        if self.done is not None and self.total:
            return min(max(self.done / self.total, 0.0), 1.0)
        return None

    @property
    def value(self) -> tuple[int, int] | float | None:
        """(done, total) or percent: the ParsedLine.progress form."""
        if self.percent is not None:
            return self.percent
        if self.done is not None and self.total is not None:
            return (self.done, self.total)
        return None


# Agents often wrap the line in markdown (`PROGRESS: 2/4`, **PROGRESS: 50%**, "- PROGRESS: ..."), so allow it.
_PROGRESS = re.compile(
    r"^[\s>*_`-]*PROGRESS\s*:\s*(?:(\d+)\s*/\s*(\d+)|(\d+(?:\.\d+)?)\s*%)[\s*_`]*(.*?)[\s*_`]*$",
    re.IGNORECASE,
)


def parse_progress(line: str) -> Progress | None:
    """Progress from a "PROGRESS: 3/5 text" or "PROGRESS: 60% text" line, else None."""
    match = _PROGRESS.match(line)
    if not match:
        return None
    done, total, percent, text = match.groups()
    if percent is not None:
        return Progress(float(percent), None, None, text.strip())
    if int(total) == 0:
        return None
    return Progress(None, int(done), int(total), text.strip())


@dataclass(frozen=True)
class Usage:
    """Tokens and money an agent run reported. `cost_usd` is None when the CLI does not price its calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None and other.cost_usd is None
            else (self.cost_usd or 0) + (other.cost_usd or 0)
        )
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int | float]:
        data: dict[str, int | float] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.cost_usd is not None:
            data["cost_usd"] = round(self.cost_usd, 6)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Usage | None:
        if not isinstance(data, dict):
            return None
        cost = as_number(data.get("cost_usd"))
        return cls(
            int(as_number(data.get("input_tokens")) or 0),
            int(as_number(data.get("output_tokens")) or 0),
            cost,
        )


def format_usage(usage: Usage | None) -> str:
    """ "12.3k tokens · $0.041", "850 tokens", or "" when nothing was reported."""
    if usage is None or (usage.tokens == 0 and not usage.cost_usd):
        return ""  # a run that never reached the model reports zeros: nothing was spent
    tokens = usage.tokens
    text = f"{tokens / 1000:.1f}k tokens" if tokens >= 1000 else f"{tokens} tokens"
    if usage.cost_usd is not None:
        text += f" · ${usage.cost_usd:.3f}" if usage.cost_usd < 1 else f" · ${usage.cost_usd:.2f}"
    return text


def last_progress(text: str) -> Progress | None:
    """The last PROGRESS line in a block of text (assistant messages hold several lines)."""
    found = None
    for line in text.splitlines():
        found = parse_progress(line) or found
    return found


@dataclass
class ParsedLine:
    #: Text for the log pane (may hold several lines); None: nothing worth showing.
    display: str | None = None
    #: When the line reported progress: "PROGRESS: 3/5 writing tests", with its words.
    progress: Progress | None = None
    #: Short state for the worker pane: "running tool Edit", "thinking", "done", "failed: ...".
    status: str | None = None
    #: The agent reports that its run failed (whatever its exit code will be).
    is_error: bool = False


class OutputParser(Protocol):
    #: Set when the stream reported a failed run: why, in the agent's own words.
    error: str | None
    #: The last recoverable error (a retried API call): the best words for a run that dies without `error`.
    warning: str | None
    #: What the run has cost so far, as the agent reported it; None when it reports nothing.
    usage: Usage | None

    def feed(self, line: str) -> ParsedLine: ...

    def feed_stderr(self, line: str) -> ParsedLine: ...

    def flush(self) -> ParsedLine: ...


MAX_SUMMARY = 160


def clip(text: str, limit: int = MAX_SUMMARY) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str) -> str:
    return clip(text.strip().splitlines()[0]) if text.strip() else ""


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def tool_summary(name: str, arguments: Any) -> str:
    """ "Edit src/app.py", "Bash pytest -q": the tool and its most telling argument."""
    args = as_dict(arguments)
    for key in (
        "file_path", "path", "filePath", "absolute_path", "command", "cmd", "pattern",
        "query", "url", "description", "dir_path",
    ):  # fmt: skip
        value = args.get(key)
        if isinstance(value, list):
            value = " ".join(str(item) for item in value)
        if isinstance(value, str) and value.strip():
            return clip(f"{name} {value}")
    return name


def failure(tool: str, message: str) -> str:
    first = first_line(message)
    return f"✗ {tool} failed: {first}" if first else f"✗ {tool} failed"


def with_progress(result: ParsedLine, text: str) -> ParsedLine:
    # One line is the common case (and a flooding agent's every line): skip the split.
    progress = last_progress(text) if "\n" in text else parse_progress(text)
    if progress is not None:
        result.progress = progress
    return result


def as_int(value: Any) -> int:
    number = as_number(value)
    return int(number) if number is not None else 0


def load_json(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None when it is not one (shown as plain text then)."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def plain(line: str) -> ParsedLine:
    text = line.rstrip("\r\n")
    return with_progress(ParsedLine(display=text), text)


class Parser:
    """What every parser keeps: the run's error, its last recoverable error, its usage."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.warning: str | None = None
        self.usage: Usage | None = None

    def feed(self, line: str) -> ParsedLine:
        return plain(line)

    def feed_stderr(self, line: str) -> ParsedLine:
        """A stderr line: shown as it is (warnings, tracebacks), never read as the JSON stream."""
        text = line.rstrip("\r\n")
        return ParsedLine(display=text or None)

    def flush(self) -> ParsedLine:
        return ParsedLine()

    def fail(self, message: str, display: str) -> ParsedLine:
        self.error = message
        return ParsedLine(display=display, status=clip(f"failed: {message}", 80), is_error=True)


class TextParser(Parser):
    """Plain output (demo, custom commands): every line shown, PROGRESS lines read."""


class JsonParser(Parser):
    """Shared plumbing: non-JSON lines are shown as they are; a handler per event type."""

    def feed(self, line: str) -> ParsedLine:
        event = load_json(line)
        if event is None:
            return plain(line)
        try:
            return self.handle(event)
        except Exception:  # an odd event must never stop the run: show it raw instead
            return ParsedLine(display=clip(line.strip(), 400))

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        raise NotImplementedError
