"""Turn agents' machine-readable output into what a person wants to see: text, tool activity, progress.

One parser per output format (config.Preset.output). Each takes the agent's stdout line by line (and its
stderr lines apart) and returns a ParsedLine: the text for the log pane (None hides noise such as tool
results), reported progress, a short status ("running tool Edit", "retrying API 3/10 after 529") and
whether the line says the run failed. The parser also keeps what the run cost (`usage`), the error that
ended the run in the agent's own words (`error`) and the last recoverable one (`warning`). The log file
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


@dataclass(frozen=True)
class Usage:
    """Tokens and money an agent run reported. `cost_usd` is None when the CLI does not price its calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None and other.cost_usd is None else (self.cost_usd or 0) + (other.cost_usd or 0)
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int | float]:
        data: dict[str, int | float] = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cost_usd is not None:
            data["cost_usd"] = round(self.cost_usd, 6)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Usage | None:
        if not isinstance(data, dict):
            return None
        cost = _number(data.get("cost_usd"))
        return cls(int(_number(data.get("input_tokens")) or 0), int(_number(data.get("output_tokens")) or 0), cost)


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


# ---------------------------------------------------------------------------------------------------------
# Parsed lines and the parser protocol


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
        result.progress = progress
    return result


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


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


class _Parser:
    """What every parser keeps: the run's error, its last recoverable error, its usage."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.warning: str | None = None
        self.usage: Usage | None = None

    def feed(self, line: str) -> ParsedLine:
        return _plain(line)

    def feed_stderr(self, line: str) -> ParsedLine:
        """A stderr line: shown as it is (warnings, tracebacks), never read as the JSON stream."""
        text = line.rstrip("\r\n")
        return ParsedLine(display=text or None)

    def flush(self) -> ParsedLine:
        return ParsedLine()

    def fail(self, message: str, display: str) -> ParsedLine:
        self.error = message
        return ParsedLine(display=display, status=_clip(f"failed: {message}", 80), is_error=True)


class TextParser(_Parser):
    """Plain output (demo, custom commands): every line shown, PROGRESS lines read."""


# aider's lines: "litellm.AuthenticationError: ...", "Retrying in 0.5 seconds...",
# "Tokens: 1.2k sent, 80 received. Cost: $0.0036 message, $0.0036 session."
_AIDER_ERROR = re.compile(r"^\s*(litellm\.[A-Za-z]+Error\b.*)$")
_AIDER_RETRY = re.compile(r"^Retrying in ([\d.]+) seconds")
_AIDER_TOKENS = re.compile(r"^Tokens: ([\d.]+)([kM]?) sent,.*?([\d.]+)([kM]?) received\.")
_AIDER_COST = re.compile(r"Cost: \$[\d.]+ message, \$([\d.]+) session\.")
_AIDER_EDIT = re.compile(r"^Applied edit to (.+)$")


def _aider_count(number: str, unit: str) -> int:
    return round(float(number) * {"": 1, "k": 1_000, "M": 1_000_000}[unit])


class AiderTextParser(_Parser):
    """aider's plain output. aider exits 0 when its model calls fail, so a litellm error that no later
    answer made good is the run's error; its usage line per answer gives tokens and the session's cost."""

    def __init__(self) -> None:
        super().__init__()
        self._answers = Usage()
        #: How many more lines an error's message may go on over (aider wraps at 80 columns, then explains
        #: in a line of its own; a blank line ends it).
        self._error_goes_on = 0

    def feed(self, line: str) -> ParsedLine:
        text = line.rstrip("\r\n")
        result = _plain(text)
        known = any(pattern.match(text) for pattern in (_AIDER_ERROR, _AIDER_RETRY, _AIDER_TOKENS, _AIDER_EDIT))
        if self._error_goes_on and text.strip() and not known and result.progress is None and self.error:
            self.error = self.warning = _clip(f"{self.error} {text.strip()}", 300)
            self._error_goes_on -= 1
            return result
        self._error_goes_on = 0
        if error := _AIDER_ERROR.match(text):
            self.error = self.warning = _clip(error.group(1), 300)
            self._error_goes_on = 2
            result.status = _clip(f"model call failed: {error.group(1)}", 80)
        elif retry := _AIDER_RETRY.match(text):
            result.status = f"retrying the model call in {retry.group(1)}s"
        elif tokens := _AIDER_TOKENS.match(text):
            self.error = None  # an answer came: earlier errors were retried away
            sent = _aider_count(tokens.group(1), tokens.group(2))
            received = _aider_count(tokens.group(3), tokens.group(4))
            self._answers = Usage(self._answers.input_tokens + sent, self._answers.output_tokens + received)
            self.usage = Usage(self._answers.input_tokens, self._answers.output_tokens, self._session_cost(text))
            result.status = "thinking"
        elif cost := _AIDER_COST.match(text):
            self.usage = Usage(self._answers.input_tokens, self._answers.output_tokens, float(cost.group(1)))
        elif edit := _AIDER_EDIT.match(text):
            result.status = f"edited {_clip(edit.group(1), 60)}"
        return result

    def feed_stderr(self, line: str) -> ParsedLine:
        return self.feed(line)  # aider's errors may come on either stream

    def _session_cost(self, text: str) -> float | None:
        found = _AIDER_COST.search(text)
        if found:
            return float(found.group(1))
        return self.usage.cost_usd if self.usage else None


class _JsonParser(_Parser):
    """Shared plumbing: non-JSON lines are shown as they are; a handler per event type."""

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


class ClaudeStreamParser(_JsonParser):
    """`claude -p --output-format stream-json --verbose`: system/init, api_retry, assistant, user, result."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, str] = {}
        #: Usage of each assistant message so far (one message comes as several events, one per block).
        self._messages: dict[str, Usage] = {}
        #: The last words the model said, which the closing `result` event repeats.
        self._last_text = ""

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        if kind == "system":
            return self._system(event)
        if kind == "assistant":
            return self._assistant(_dict(event.get("message")))
        if kind == "user":
            return self._tool_results(_dict(event.get("message")))
        if kind == "result":
            return self._result(event)
        return ParsedLine()  # stream_event deltas and anything newer: the full message follows

    def _system(self, event: dict[str, Any]) -> ParsedLine:
        subtype = event.get("subtype")
        if subtype == "init":
            model = _str(event.get("model"))
            return ParsedLine(display=f"session started{f' ({model})' if model else ''}", status="starting")
        if subtype == "api_retry":
            attempt, most = _int(event.get("attempt")), _int(event.get("max_retries"))
            cause = event.get("error_status") or _str(event.get("error")) or "an error"
            delay = _number(event.get("retry_delay_ms"))
            status = f"retrying API {attempt}/{most} after {cause}"
            self.warning = f"API error {cause} (retried {attempt} of {most} times)"
            wait = f" in {delay / 1000:.0f}s" if delay is not None else ""
            return ParsedLine(display=f"{status}{wait}", status=status)
        if subtype == "thinking_tokens":
            return ParsedLine(status="thinking")
        return ParsedLine()

    def _assistant(self, message: dict[str, Any]) -> ParsedLine:
        shown: list[str] = []
        texts: list[str] = []
        status = None
        self._count(message)
        synthetic = message.get("model") == "<synthetic>"
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
            elif block.get("type") in ("thinking", "redacted_thinking"):
                status = status or "thinking"
        if texts and not synthetic:
            self._last_text = "\n".join(texts).strip()
        if synthetic and texts:
            # Claude Code's own words for a failed API call ("API Error: 529 ..."), not the model's.
            self.warning = _first_line(texts[0])
            return ParsedLine(display="\n".join(shown), status=_clip(self.warning, 80))
        result = ParsedLine(
            display="\n".join(shown) or None, status=status or ("thinking" if texts else None)
        )
        return _with_progress(result, "\n".join(texts))

    def _count(self, message: dict[str, Any]) -> None:
        usage = _dict(message.get("usage"))
        if not usage or message.get("model") == "<synthetic>":
            return
        self._messages[_str(message.get("id")) or str(len(self._messages))] = _claude_usage(usage, None)
        total = Usage()
        for counted in self._messages.values():
            total = total + counted
        self.usage = total

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
        if isinstance(event.get("usage"), dict) or _number(event.get("total_cost_usd")) is not None:
            self.usage = _claude_usage(_dict(event.get("usage")), _number(event.get("total_cost_usd")))
        details = []
        if (turns := _number(event.get("num_turns"))) is not None:
            details.append(f"{int(turns)} turns")
        if (cost := _number(event.get("total_cost_usd"))) is not None:
            details.append(f"${cost:.2f}")
        if (millis := _number(event.get("duration_ms"))) is not None:
            details.append(f"{millis / 1000:.0f}s")
        suffix = f" ({', '.join(details)})" if details else ""
        if event.get("is_error") is True or subtype != "success":
            errors = [_first_line(_str(item)) for item in _list(event.get("errors")) if _str(item).strip()]
            message = "; ".join(errors) or _first_line(_str(event.get("result"))) or self.warning or subtype
            return self.fail(message, f"agent failed: {message}{suffix}")
        final = _str(event.get("result")).strip()
        repeated = final == self._last_text  # already shown as the model said it
        display = (final + "\n" if final and not repeated else "") + f"done{suffix}"
        return _with_progress(ParsedLine(display=display, status="done"), final)


def _claude_usage(usage: dict[str, Any], cost: float | None) -> Usage:
    # Anthropic counts cached prompt tokens apart from the rest; all of them were sent.
    sent = sum(_int(usage.get(key)) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return Usage(sent, _int(usage.get("output_tokens")), cost)


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
            turn = Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")))
            self.usage = turn if self.usage is None else self.usage + turn
            detail = f" ({turn.input_tokens} in / {turn.output_tokens} out tokens)" if usage else ""
            return ParsedLine(display=f"done{detail}", status="done")
        if kind == "turn.failed":
            message = _str(_dict(event.get("error")).get("message")) or self.warning or "turn failed"
            return self.fail(message, f"agent failed: {_first_line(message)}")
        if kind == "error":
            # Often recoverable ("Reconnecting... 2/5"): turn.failed says when the run failed.
            message = _first_line(_str(event.get("message"))) or "error"
            self.warning = message
            return ParsedLine(display=f"error: {message}", status=_clip(message, 80))
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(kind.split(".")[1], _dict(event.get("item")))
        return ParsedLine()

    def _item(self, phase: str, item: dict[str, Any]) -> ParsedLine:
        kind = item.get("type")
        if kind == "todo_list":
            todos = [_dict(todo) for todo in _list(item.get("items"))]
            done = sum(1 for todo in todos if todo.get("completed") is True)
            return ParsedLine(progress=Progress(None, done, len(todos), "") if todos else None)
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


#: Gemini CLI's word on stderr that a model call failed and is tried again (nothing comes on stdout meanwhile).
_GEMINI_RETRY = re.compile(r"Attempt (?P<attempt>\d+) failed with status (?P<status>\d+)\. Retrying")
#: A JavaScript error's stack frame, and the fields and closing brace printed after the last one.
_JS_FRAME = re.compile(r"^\s+at \S")
_JS_TRACE_TAIL = re.compile(r"^(?:\s+\w+: .*|\})$")


class GeminiStreamParser(_JsonParser):
    """`gemini -p --output-format stream-json`: init, message, tool_use, tool_result, error, result."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, str] = {}
        self.pending = ""  # streamed assistant text not yet ended by a newline
        self._in_trace = False  # inside an error's stack trace (the log has it, not the pane)

    def feed_stderr(self, line: str) -> ParsedLine:
        # Each failed model call comes with a stack trace of a dozen lines: they would push the error's own
        # words out of the pane, so the pane shows the words and the log keeps the rest.
        text = line.rstrip("\r\n")
        if _JS_FRAME.match(text) or (self._in_trace and _JS_TRACE_TAIL.match(text)):
            self._in_trace = True
            return ParsedLine()
        self._in_trace = False
        retry = _GEMINI_RETRY.search(text)
        if retry is None:
            return super().feed_stderr(line)
        status = f"retrying API after {retry['status']} (attempt {retry['attempt']} failed)"
        self.warning = f"API error {retry['status']} (retried {retry['attempt']} times)"
        return ParsedLine(display=status, status=status)

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
            name = self.tools.get(_str(event.get("tool_id")), "tool")
            if event.get("status") != "error":
                # Gemini's own tools finish in milliseconds: the pane keeps the tool's name while the
                # model thinks, or the user would never see which tool ran.
                return ParsedLine(status=f"thinking (after {name})")
            error = event.get("error")
            message = _str(_dict(error).get("message")) or _str(error) or _str(event.get("output"))
            return ParsedLine(display=_failure(name, message), status="thinking")
        if kind == "error":
            # Reported errors are often recoverable; the final result says whether the run failed.
            severity = _str(event.get("severity")) or "error"
            message = _first_line(_str(event.get("message")))
            if severity == "error" and message:
                self.warning = message
            return ParsedLine(display=f"{severity}: {message}")
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
        if stats:
            sent = _int(stats.get("input_tokens")) or _int(stats.get("input"))
            received = _int(stats.get("output_tokens")) or _int(stats.get("output"))
            if not (sent or received) and (total := _int(stats.get("total_tokens"))):
                sent = total  # only a total reported: count it once, as sent
            self.usage = Usage(sent, received)
        if event.get("status") == "error" or event.get("error"):
            error = event.get("error")
            message = _str(_dict(error).get("message")) or _str(error) or self.warning or "error"
            return self.fail(message, f"agent failed: {_first_line(message)}{suffix}")
        return ParsedLine(display=f"done{suffix}", status="done")


class OpencodeJsonParser(_JsonParser):
    """`opencode run --format json`: step_start, text, reasoning, tool_use, step_finish, error.

    The stream ends with the last step_finish (no end event of its own); each step_finish reports that
    step's tokens and cost.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_tool = ""  # the last tool reported in the current step

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = event.get("type")
        part = _dict(event.get("part"))
        if kind == "step_start":
            if self.error is not None:  # a new step after an error: it was retried away
                self.warning, self.error = self.error, None
            self.last_tool = ""
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
            self.last_tool = name
            return ParsedLine(
                display="→ " + _tool_summary(name, state.get("input")), status=f"ran tool {name}"
            )
        if kind == "step_finish":
            tokens = _dict(part.get("tokens"))
            cache = _dict(tokens.get("cache"))
            step = Usage(
                _int(tokens.get("input")) + _int(cache.get("read")) + _int(cache.get("write")),
                _int(tokens.get("output")) + _int(tokens.get("reasoning")),
                _number(part.get("cost")),
            )
            self.usage = step if self.usage is None else self.usage + step
            if part.get("reason") in ("stop", "end_turn", "length"):
                return ParsedLine(status="done")
            # opencode reports a tool only once it has finished, and ends the step milliseconds later:
            # the pane keeps the tool's name while the model thinks, or the user would never see it.
            return ParsedLine(status=f"thinking (after {self.last_tool})" if self.last_tool else "thinking")
        if kind == "error":
            error = event.get("error")
            data = _dict(_dict(error).get("data"))
            message = _str(data.get("message")) or _str(_dict(error).get("name")) or _str(error) or "error"
            if (code := _number(data.get("statusCode"))) is not None and str(int(code)) not in message:
                message = f"{message} (HTTP {int(code)})"
            return self.fail(message, f"agent failed: {_first_line(message)}")
        if kind == "done":  # older versions end with it
            rejected = [str(item) for item in _list(event.get("rejected"))]
            if rejected:
                return ParsedLine(display=f"done; permissions refused: {', '.join(rejected)}", status="done")
            return ParsedLine(display="done", status="done")
        return ParsedLine()


PARSERS: dict[str, type[_Parser]] = {
    "text": TextParser,
    "aider-text": AiderTextParser,
    "claude-stream": ClaudeStreamParser,
    "codex-json": CodexJsonParser,
    "gemini-stream": GeminiStreamParser,
    "opencode-json": OpencodeJsonParser,
}


def make_output_parser(fmt: str) -> OutputParser:
    """A fresh parser for one agent run. Unknown formats fall back to plain text."""
    return PARSERS.get(fmt, TextParser)()
