"""Turn agents' machine-readable output into what a person wants to see: text, tool activity, progress.

One parser per output format (config.Preset.output). Each takes the agent's stdout line by line and
returns a ParsedLine: the text for the log pane (None hides noise such as tool results), reported
progress, a short status ("running tool Edit") and whether the line says the run failed. The log file
keeps every raw line; this only shapes what the panes show. Nothing here raises on bad input: a line
that is not the JSON we expect is shown as it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

# ---------------------------------------------------------------------------------------------------------
# PROGRESS lines


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


def last_progress(text: str) -> Progress | None:
    """The last PROGRESS line in a block of text (assistant messages hold several lines)."""
    found = None
    for line in text.splitlines():
        found = parse_progress(line) or found
    return found


# ---------------------------------------------------------------------------------------------------------
# Parsed lines and the parser protocol


@dataclass
class ParsedLine:
    #: Text for the log pane (may hold several lines); None: nothing worth showing.
    display: str | None = None
    #: (done, total) or percent, when the line reported progress.
    progress: tuple[int, int] | float | None = None
    #: Short state for the worker pane: "running tool Edit", "thinking", "done", "failed: ...".
    status: str | None = None
    #: The agent reports that its run failed (whatever its exit code will be).
    is_error: bool = False


class OutputParser(Protocol):
    #: Set when the stream reported a failed run; the last error message seen.
    error: str | None

    def feed(self, line: str) -> ParsedLine: ...

    def flush(self) -> ParsedLine: ...


MAX_SUMMARY = 160


def _clip(text: str, limit: int = MAX_SUMMARY) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str) -> str:
    return _clip(text.strip().splitlines()[0]) if text.strip() else ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tool_summary(name: str, arguments: Any) -> str:
    """ "Edit src/app.py", "Bash pytest -q": the tool and its most telling argument."""
    args = _dict(arguments)
    for key in (
        "file_path", "path", "filePath", "absolute_path", "command", "cmd", "pattern",
        "query", "url", "description", "dir_path",
    ):  # fmt: skip
        value = args.get(key)
        if isinstance(value, list):
            value = " ".join(str(item) for item in value)
        if isinstance(value, str) and value.strip():
            return _clip(f"{name} {value}")
    return name


def _failure(tool: str, message: str) -> str:
    first = _first_line(message)
    return f"✗ {tool} failed: {first}" if first else f"✗ {tool} failed"


def _with_progress(result: ParsedLine, text: str) -> ParsedLine:
    # One line is the common case (and a flooding agent's every line): skip the split.
    progress = last_progress(text) if "\n" in text else parse_progress(text)
    if progress is not None:
        result.progress = progress.value
    return result


def _load_json(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None when it is not one (shown as plain text then)."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _plain(line: str) -> ParsedLine:
    text = line.rstrip("\r\n")
    return _with_progress(ParsedLine(display=text), text)


# ---------------------------------------------------------------------------------------------------------
# Formats


class TextParser:
    """Plain output (aider, demo, custom commands): every line shown, PROGRESS lines read."""

    def __init__(self) -> None:
        self.error: str | None = None

    def feed(self, line: str) -> ParsedLine:
        return _plain(line)

    def flush(self) -> ParsedLine:
        return ParsedLine()


class _JsonParser:
    """Shared plumbing: non-JSON lines are shown as they are; a handler per event type."""

    def __init__(self) -> None:
        self.error: str | None = None

    def feed(self, line: str) -> ParsedLine:
        event = _load_json(line)
        if event is None:
            return _plain(line)
        try:
            return self.handle(event)
        except Exception:  # an odd event must never stop the run: show it raw instead
            return ParsedLine(display=_clip(line.strip(), 400))

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        raise NotImplementedError

    def flush(self) -> ParsedLine:
        return ParsedLine()

    def fail(self, message: str, display: str) -> ParsedLine:
        self.error = message
        return ParsedLine(display=display, status=_clip(f"failed: {message}", 80), is_error=True)


class ClaudeStreamParser(_JsonParser):
    """`claude -p --output-format stream-json --verbose`: system/init, assistant, user, result."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, str] = {}

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        if kind == "system":
            if event.get("subtype") == "init":
                model = _str(event.get("model"))
                return ParsedLine(
                    display=f"session started{f' ({model})' if model else ''}", status="starting"
                )
            return ParsedLine()
        if kind == "assistant":
            return self._assistant(_dict(event.get("message")))
        if kind == "user":
            return self._tool_results(_dict(event.get("message")))
        if kind == "result":
            return self._result(event)
        return ParsedLine()  # stream_event deltas and anything newer: the full message follows

    def _assistant(self, message: dict[str, Any]) -> ParsedLine:
        shown: list[str] = []
        texts: list[str] = []
        status = None
        for block in _list(message.get("content")):
            block = _dict(block)
            if block.get("type") == "text" and _str(block.get("text")).strip():
                texts.append(block["text"])
                shown.append(block["text"].rstrip())
            elif block.get("type") == "tool_use":
                name = _str(block.get("name")) or "tool"
                self.tools[_str(block.get("id"))] = name
                shown.append("→ " + _tool_summary(name, block.get("input")))
                status = f"running tool {name}"
        result = ParsedLine(
            display="\n".join(shown) or None, status=status or ("thinking" if texts else None)
        )
        return _with_progress(result, "\n".join(texts))

    def _tool_results(self, message: dict[str, Any]) -> ParsedLine:
        # Tool output is noise in a pane (the log file has it), except when a tool failed.
        failures = []
        for block in _list(message.get("content")):
            block = _dict(block)
            if block.get("type") == "tool_result" and block.get("is_error") is True:
                name = self.tools.get(_str(block.get("tool_use_id")), "tool")
                failures.append(_failure(name, _content_text(block.get("content"))))
        return ParsedLine(display="\n".join(failures) or None, status="thinking")

    def _result(self, event: dict[str, Any]) -> ParsedLine:
        subtype = _str(event.get("subtype")) or "success"
        details = []
        if (turns := _number(event.get("num_turns"))) is not None:
            details.append(f"{int(turns)} turns")
        if (cost := _number(event.get("total_cost_usd"))) is not None:
            details.append(f"${cost:.2f}")
        if (millis := _number(event.get("duration_ms"))) is not None:
            details.append(f"{millis / 1000:.0f}s")
        suffix = f" ({', '.join(details)})" if details else ""
        if event.get("is_error") is True or subtype != "success":
            reason = _first_line(_str(event.get("result"))) or subtype
            message = subtype if reason == subtype else f"{subtype}: {reason}"
            return self.fail(message, f"agent failed: {message}{suffix}")
        final = _str(event.get("result")).strip()
        display = (final + "\n" if final else "") + f"done{suffix}"
        return _with_progress(ParsedLine(display=display, status="done"), final)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(_str(_dict(part).get("text")) for part in _list(content))


class CodexJsonParser(_JsonParser):
    """`codex exec --json`: thread/turn events and item.started/updated/completed."""

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        if kind == "thread.started":
            return ParsedLine(display="session started", status="starting")
        if kind == "turn.started":
            return ParsedLine(status="thinking")
        if kind == "turn.completed":
            usage = _dict(event.get("usage"))
            tokens = [_number(usage.get(key)) for key in ("input_tokens", "output_tokens")]
            detail = f" ({int(tokens[0])} in / {int(tokens[1])} out tokens)" if None not in tokens else ""
            return ParsedLine(display=f"done{detail}", status="done")
        if kind == "turn.failed":
            message = _str(_dict(event.get("error")).get("message")) or "turn failed"
            return self.fail(message, f"agent failed: {_first_line(message)}")
        if kind == "error":
            message = _str(event.get("message")) or "error"
            return self.fail(message, f"error: {_first_line(message)}")
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(kind.split(".")[1], _dict(event.get("item")))
        return ParsedLine()

    def _item(self, phase: str, item: dict[str, Any]) -> ParsedLine:
        kind = item.get("type")
        if kind == "todo_list":
            todos = [_dict(todo) for todo in _list(item.get("items"))]
            done = sum(1 for todo in todos if todo.get("completed") is True)
            return ParsedLine(progress=(done, len(todos)) if todos else None)
        if kind == "command_execution":
            command = _clip(_str(item.get("command")))
            if phase != "completed":
                return ParsedLine(status=_clip(f"running {command}", 80))
            code = item.get("exit_code")
            return ParsedLine(display=f"$ {command}" + (f"  [exit {code}]" if code not in (None, 0) else ""))
        if phase != "completed":
            if kind == "file_change":
                return ParsedLine(status="editing files")
            if kind == "mcp_tool_call":
                return ParsedLine(status=f"running tool {_str(item.get('tool'))}")
            if kind == "reasoning":
                return ParsedLine(status="thinking")
            return ParsedLine()
        if kind == "agent_message":
            text = _str(item.get("text"))
            return _with_progress(ParsedLine(display=text.rstrip() or None), text)
        if kind == "reasoning":
            text = _str(item.get("text")).strip()
            return ParsedLine(display=f"(thinking) {_first_line(text)}" if text else None, status="thinking")
        if kind == "file_change":
            changes = [_dict(change) for change in _list(item.get("changes"))]
            listed = ", ".join(f"{_str(c.get('kind')) or 'edit'} {_str(c.get('path'))}" for c in changes)
            return ParsedLine(display=_clip(f"edited: {listed}") if listed else None)
        if kind == "mcp_tool_call":
            name = ".".join(part for part in (_str(item.get("server")), _str(item.get("tool"))) if part)
            failed = item.get("error") or item.get("status") == "failed"
            return ParsedLine(display=f"→ {name or 'tool'}" + ("  [failed]" if failed else ""))
        if kind == "web_search":
            return ParsedLine(display=_clip(f"web search: {_str(item.get('query'))}"))
        if kind == "error":
            return ParsedLine(display=f"error: {_first_line(_str(item.get('message')))}")
        return ParsedLine()


class GeminiStreamParser(_JsonParser):
    """`gemini -p --output-format stream-json`: init, message, tool_use, tool_result, error, result."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, str] = {}
        self.pending = ""  # streamed assistant text not yet ended by a newline

    def feed(self, line: str) -> ParsedLine:
        result = super().feed(line)
        event = _load_json(line)
        if event is not None and event.get("type") == "message":
            return result
        # Anything else ends a streamed message: show what was held back first.
        return self._prepend_pending(result)

    def flush(self) -> ParsedLine:
        return self._prepend_pending(ParsedLine())

    def _prepend_pending(self, result: ParsedLine) -> ParsedLine:
        if not self.pending.strip():
            self.pending = ""
            return result
        held, self.pending = self.pending.rstrip(), ""
        result.display = held if result.display is None else f"{held}\n{result.display}"
        if result.progress is None:
            _with_progress(result, held)
        return result

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        if kind == "init":
            model = _str(event.get("model"))
            return ParsedLine(display=f"session started{f' ({model})' if model else ''}", status="starting")
        if kind == "message":
            if event.get("role") != "assistant":
                return ParsedLine()  # the prompt echoed back
            return self._message(_str(event.get("content")), event.get("delta") is True)
        if kind == "tool_use":
            name = _str(event.get("tool_name")) or "tool"
            self.tools[_str(event.get("tool_id"))] = name
            return ParsedLine(
                display="→ " + _tool_summary(name, event.get("parameters")), status=f"running tool {name}"
            )
        if kind == "tool_result":
            if event.get("status") != "error":
                return ParsedLine(status="thinking")
            name = self.tools.get(_str(event.get("tool_id")), "tool")
            error = event.get("error")
            message = _str(_dict(error).get("message")) or _str(error) or _str(event.get("output"))
            return ParsedLine(display=_failure(name, message), status="thinking")
        if kind == "error":
            # Reported errors are often recoverable; the final result says whether the run failed.
            severity = _str(event.get("severity")) or "error"
            return ParsedLine(display=f"{severity}: {_first_line(_str(event.get('message')))}")
        if kind == "result":
            return self._result(event)
        return ParsedLine()

    def _message(self, content: str, delta: bool) -> ParsedLine:
        if not delta:
            return _with_progress(ParsedLine(display=content.rstrip() or None, status="thinking"), content)
        # Deltas are fragments: show whole lines as they complete, hold the rest.
        self.pending += content
        if "\n" not in self.pending:
            return ParsedLine(status="thinking")
        complete, self.pending = self.pending.rsplit("\n", 1)
        result = ParsedLine(display=complete.rstrip() or None, status="thinking")
        return _with_progress(result, complete)

    def _result(self, event: dict[str, Any]) -> ParsedLine:
        stats = _dict(event.get("stats"))
        details = []
        if (tokens := _number(stats.get("total_tokens"))) is not None:
            details.append(f"{int(tokens)} tokens")
        if (calls := _number(stats.get("tool_calls"))) is not None:
            details.append(f"{int(calls)} tool calls")
        if (millis := _number(stats.get("duration_ms"))) is not None:
            details.append(f"{millis / 1000:.0f}s")
        suffix = f" ({', '.join(details)})" if details else ""
        if event.get("status") == "error" or event.get("error"):
            error = event.get("error")
            message = _str(_dict(error).get("message")) or _str(error) or "error"
            return self.fail(message, f"agent failed: {_first_line(message)}{suffix}")
        return ParsedLine(display=f"done{suffix}", status="done")


class OpencodeJsonParser(_JsonParser):
    """`opencode run --format json`: step_start, text, reasoning, tool_use, step_finish, error, done."""

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        part = _dict(event.get("part"))
        if kind == "step_start":
            return ParsedLine(status="thinking")
        if kind == "text":
            text = _str(part.get("text"))
            return _with_progress(ParsedLine(display=text.rstrip() or None), text)
        if kind == "reasoning":
            text = _str(part.get("text")).strip()
            return ParsedLine(display=f"(thinking) {_first_line(text)}" if text else None, status="thinking")
        if kind == "tool_use":
            name = _str(part.get("tool")) or "tool"
            state = _dict(part.get("state"))
            if state.get("status") == "error":
                return ParsedLine(display=_failure(name, _str(state.get("error"))), status="thinking")
            return ParsedLine(
                display="→ " + _tool_summary(name, state.get("input")), status=f"ran tool {name}"
            )
        if kind == "step_finish":
            return ParsedLine()
        if kind == "error":
            error = event.get("error")
            data = _dict(_dict(error).get("data"))
            message = _str(data.get("message")) or _str(_dict(error).get("name")) or _str(error) or "error"
            return self.fail(message, f"agent failed: {_first_line(message)}")
        if kind == "done":
            rejected = [str(item) for item in _list(event.get("rejected"))]
            if rejected:
                return ParsedLine(display=f"done; permissions refused: {', '.join(rejected)}", status="done")
            return ParsedLine(display="done", status="done")
        return ParsedLine()


PARSERS: dict[str, type[TextParser] | type[_JsonParser]] = {
    "text": TextParser,
    "claude-stream": ClaudeStreamParser,
    "codex-json": CodexJsonParser,
    "gemini-stream": GeminiStreamParser,
    "opencode-json": OpencodeJsonParser,
}


def make_output_parser(fmt: str) -> OutputParser:
    """A fresh parser for one agent run. Unknown formats fall back to plain text."""
    return PARSERS.get(fmt, TextParser)()
