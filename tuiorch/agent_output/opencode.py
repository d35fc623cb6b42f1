"""opencode's JSON events (`opencode run --format json`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuiorch.agent_output.base import (
    JsonParser,
    ParsedLine,
    Usage,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    failure,
    first_line,
    tool_summary,
    with_progress,
)


class OpencodeJsonParser(JsonParser):
    """`opencode run --format json`: step_start, text, reasoning, tool_use, step_finish, error.

    The stream ends with the last step_finish (no end event of its own); each step_finish reports that
    step's tokens and cost.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_tool = ""  # the last tool reported in the current step

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        handler = _EVENTS.get(as_str(event.get("type")))
        return handler(self, event, as_dict(event.get("part"))) if handler else ParsedLine()

    def _step_start(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        if self.error is not None:  # a new step after an error: it was retried away
            self.warning, self.error = self.error, None
        self.last_tool = ""
        return ParsedLine(status="thinking")

    def _text(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        text = as_str(part.get("text"))
        return with_progress(ParsedLine(display=text.rstrip() or None), text)

    def _reasoning(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        text = as_str(part.get("text")).strip()
        return ParsedLine(display=f"(thinking) {first_line(text)}" if text else None, status="thinking")

    def _tool_use(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        name = as_str(part.get("tool")) or "tool"
        state = as_dict(part.get("state"))
        if state.get("status") == "error":
            return ParsedLine(display=failure(name, as_str(state.get("error"))), status="thinking")
        self.last_tool = name
        return ParsedLine(display="→ " + tool_summary(name, state.get("input")), status=f"ran tool {name}")

    def _step_finish(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        step = Usage(
            as_int(tokens.get("input")) + as_int(cache.get("read")) + as_int(cache.get("write")),
            as_int(tokens.get("output")) + as_int(tokens.get("reasoning")),
            as_number(part.get("cost")),
        )
        self.usage = step if self.usage is None else self.usage + step
        if part.get("reason") in ("stop", "end_turn", "length"):
            return ParsedLine(status="done")
        # opencode reports a tool only once it has finished, and ends the step milliseconds later:
        # the pane keeps the tool's name while the model thinks, or the user would never see it.
        return ParsedLine(status=f"thinking (after {self.last_tool})" if self.last_tool else "thinking")

    def _error(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        error = event.get("error")
        data = as_dict(as_dict(error).get("data"))
        message = (
            as_str(data.get("message")) or as_str(as_dict(error).get("name")) or as_str(error) or "error"
        )
        if (code := as_number(data.get("statusCode"))) is not None and str(int(code)) not in message:
            message = f"{message} (HTTP {int(code)})"
        return self.fail(message, f"agent failed: {first_line(message)}")

    def _done(self, event: dict[str, Any], part: dict[str, Any]) -> ParsedLine:
        # Older versions end the stream with it.
        rejected = [str(item) for item in as_list(event.get("rejected"))]
        if rejected:
            return ParsedLine(display=f"done; permissions refused: {', '.join(rejected)}", status="done")
        return ParsedLine(display="done", status="done")


_EVENTS: dict[str, Callable[[OpencodeJsonParser, dict[str, Any], dict[str, Any]], ParsedLine]] = {
    "step_start": OpencodeJsonParser._step_start,
    "text": OpencodeJsonParser._text,
    "reasoning": OpencodeJsonParser._reasoning,
    "tool_use": OpencodeJsonParser._tool_use,
    "step_finish": OpencodeJsonParser._step_finish,
    "error": OpencodeJsonParser._error,
    "done": OpencodeJsonParser._done,
}
