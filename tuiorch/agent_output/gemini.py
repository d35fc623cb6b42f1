"""Gemini CLI's stream-json output, and its retry notices and stack traces on stderr."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tuiorch.agent_output.base import (
    JsonParser,
    ParsedLine,
    Usage,
    as_dict,
    as_int,
    as_number,
    as_str,
    failure,
    first_line,
    load_json,
    tool_summary,
    with_progress,
)

#: Gemini CLI's word on stderr that a model call failed and is tried again (nothing comes on stdout meanwhile).
_GEMINI_RETRY = re.compile(r"Attempt (?P<attempt>\d+) failed with status (?P<status>\d+)\. Retrying")
#: A JavaScript error's stack frame, and the fields and closing brace printed after the last one.
_JS_FRAME = re.compile(r"^\s+at \S")
_JS_TRACE_TAIL = re.compile(r"^(?:\s+\w+: .*|\})$")


class GeminiStreamParser(JsonParser):
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
        event = load_json(line)
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
            with_progress(result, held)
        return result

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        handler = _EVENTS.get(as_str(event.get("type")))
        return handler(self, event) if handler else ParsedLine()

    def _init(self, event: dict[str, Any]) -> ParsedLine:
        model = as_str(event.get("model"))
        return ParsedLine(display=f"session started{f' ({model})' if model else ''}", status="starting")

    def _message_event(self, event: dict[str, Any]) -> ParsedLine:
        if event.get("role") != "assistant":
            return ParsedLine()  # the prompt echoed back
        return self._message(as_str(event.get("content")), event.get("delta") is True)

    def _tool_use(self, event: dict[str, Any]) -> ParsedLine:
        name = as_str(event.get("tool_name")) or "tool"
        self.tools[as_str(event.get("tool_id"))] = name
        return ParsedLine(
            display="→ " + tool_summary(name, event.get("parameters")), status=f"running tool {name}"
        )

    def _tool_result(self, event: dict[str, Any]) -> ParsedLine:
        name = self.tools.get(as_str(event.get("tool_id")), "tool")
        if event.get("status") != "error":
            # Gemini's own tools finish in milliseconds: the pane keeps the tool's name while the
            # model thinks, or the user would never see which tool ran.
            return ParsedLine(status=f"thinking (after {name})")
        message = _error_text(event.get("error")) or as_str(event.get("output"))
        return ParsedLine(display=failure(name, message), status="thinking")

    def _error(self, event: dict[str, Any]) -> ParsedLine:
        # Reported errors are often recoverable; the final result says whether the run failed.
        severity = as_str(event.get("severity")) or "error"
        message = first_line(as_str(event.get("message")))
        if severity == "error" and message:
            self.warning = message
        return ParsedLine(display=f"{severity}: {message}")

    def _message(self, content: str, delta: bool) -> ParsedLine:
        if not delta:
            return with_progress(ParsedLine(display=content.rstrip() or None, status="thinking"), content)
        # Deltas are fragments: show whole lines as they complete, hold the rest.
        self.pending += content
        if "\n" not in self.pending:
            return ParsedLine(status="thinking")
        complete, self.pending = self.pending.rsplit("\n", 1)
        result = ParsedLine(display=complete.rstrip() or None, status="thinking")
        return with_progress(result, complete)

    def _result(self, event: dict[str, Any]) -> ParsedLine:
        stats = as_dict(event.get("stats"))
        suffix = _result_details(stats)
        if stats:
            self.usage = _gemini_usage(stats)
        if event.get("status") == "error" or event.get("error"):
            message = _error_text(event.get("error")) or self.warning or "error"
            return self.fail(message, f"agent failed: {first_line(message)}{suffix}")
        return ParsedLine(display=f"done{suffix}", status="done")


_EVENTS: dict[str, Callable[[GeminiStreamParser, dict[str, Any]], ParsedLine]] = {
    "init": GeminiStreamParser._init,
    "message": GeminiStreamParser._message_event,
    "tool_use": GeminiStreamParser._tool_use,
    "tool_result": GeminiStreamParser._tool_result,
    "error": GeminiStreamParser._error,
    "result": GeminiStreamParser._result,
}


def _error_text(error: Any) -> str:
    """An event's error: its message when it is an object, else the error as text ("" for none)."""
    return as_str(as_dict(error).get("message")) or as_str(error)


def _result_details(stats: dict[str, Any]) -> str:
    """ " (1234 tokens, 3 tool calls, 12s)" from the result's stats, or "" when they say none of these."""
    details = []
    if (tokens := as_number(stats.get("total_tokens"))) is not None:
        details.append(f"{int(tokens)} tokens")
    if (calls := as_number(stats.get("tool_calls"))) is not None:
        details.append(f"{int(calls)} tool calls")
    if (millis := as_number(stats.get("duration_ms"))) is not None:
        details.append(f"{millis / 1000:.0f}s")
    return f" ({', '.join(details)})" if details else ""


def _gemini_usage(stats: dict[str, Any]) -> Usage:
    sent = as_int(stats.get("input_tokens")) or as_int(stats.get("input"))
    received = as_int(stats.get("output_tokens")) or as_int(stats.get("output"))
    if not (sent or received) and (total := as_int(stats.get("total_tokens"))):
        sent = total  # only a total reported: count it once, as sent
    return Usage(sent, received)
