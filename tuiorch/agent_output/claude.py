"""Claude Code's stream-json output (`claude -p --output-format stream-json --verbose`)."""

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
    clip,
    failure,
    first_line,
    tool_summary,
    with_progress,
)


class ClaudeStreamParser(JsonParser):
    """`claude -p --output-format stream-json --verbose`: system/init, api_retry, assistant, user, result."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: dict[str, str] = {}
        #: Usage of each assistant message so far (one message comes as several events, one per block).
        self._messages: dict[str, Usage] = {}
        #: The last words the model said, which the closing `result` event repeats.
        self._last_text = ""

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        handler = _EVENTS.get(as_str(event.get("type")))
        # stream_event deltas and anything newer show nothing: the full message follows
        return handler(self, event) if handler else ParsedLine()

    def _system(self, event: dict[str, Any]) -> ParsedLine:
        handler = _SYSTEM_EVENTS.get(as_str(event.get("subtype")))
        return handler(self, event) if handler else ParsedLine()

    def _init(self, event: dict[str, Any]) -> ParsedLine:
        model = as_str(event.get("model"))
        return ParsedLine(display=f"session started{f' ({model})' if model else ''}", status="starting")

    def _api_retry(self, event: dict[str, Any]) -> ParsedLine:
        attempt, most = as_int(event.get("attempt")), as_int(event.get("max_retries"))
        cause = event.get("error_status") or as_str(event.get("error")) or "an error"
        delay = as_number(event.get("retry_delay_ms"))
        status = f"retrying API {attempt}/{most} after {cause}"
        self.warning = f"API error {cause} (retried {attempt} of {most} times)"
        wait = f" in {delay / 1000:.0f}s" if delay is not None else ""
        return ParsedLine(display=f"{status}{wait}", status=status)

    def _thinking_tokens(self, event: dict[str, Any]) -> ParsedLine:
        return ParsedLine(status="thinking")

    def _assistant(self, event: dict[str, Any]) -> ParsedLine:
        message = as_dict(event.get("message"))
        self._count(message)
        shown, texts, status = self._blocks(as_list(message.get("content")))
        if texts and message.get("model") == "<synthetic>":
            # Claude Code's own words for a failed API call ("API Error: 529 ..."), not the model's.
            self.warning = first_line(texts[0])
            return ParsedLine(display="\n".join(shown), status=clip(self.warning, 80))
        if texts:
            self._last_text = "\n".join(texts).strip()
        result = ParsedLine(
            display="\n".join(shown) or None, status=status or ("thinking" if texts else None)
        )
        return with_progress(result, "\n".join(texts))

    def _blocks(self, content: list[Any]) -> tuple[list[str], list[str], str | None]:
        """What a message's blocks show, the model's words among them, and the status they leave."""
        shown: list[str] = []
        texts: list[str] = []
        status = None
        for block in map(as_dict, content):
            kind = block.get("type")
            if kind == "tool_use":
                name = as_str(block.get("name")) or "tool"
                self.tools[as_str(block.get("id"))] = name
                shown.append("→ " + tool_summary(name, block.get("input")))
                status = f"running tool {name}"
            elif kind in ("thinking", "redacted_thinking"):
                status = status or "thinking"
            elif text := _said(block):
                texts.append(text)
                shown.append(text.rstrip())
        return shown, texts, status

    def _count(self, message: dict[str, Any]) -> None:
        usage = as_dict(message.get("usage"))
        if not usage or message.get("model") == "<synthetic>":
            return
        self._messages[as_str(message.get("id")) or str(len(self._messages))] = _claude_usage(usage, None)
        self.usage = sum(self._messages.values(), Usage())

    def _tool_results(self, event: dict[str, Any]) -> ParsedLine:
        # Tool output is noise in a pane (the log file has it), except when a tool failed.
        failures = []
        for block in map(as_dict, as_list(as_dict(event.get("message")).get("content"))):
            if block.get("type") == "tool_result" and block.get("is_error") is True:
                name = self.tools.get(as_str(block.get("tool_use_id")), "tool")
                failures.append(failure(name, _content_text(block.get("content"))))
        return ParsedLine(display="\n".join(failures) or None, status="thinking")

    def _result(self, event: dict[str, Any]) -> ParsedLine:
        cost = as_number(event.get("total_cost_usd"))
        if isinstance(event.get("usage"), dict) or cost is not None:
            self.usage = _claude_usage(as_dict(event.get("usage")), cost)
        suffix = _result_details(event)
        subtype = as_str(event.get("subtype")) or "success"
        if event.get("is_error") is True or subtype != "success":
            return self._failed(event, subtype, suffix)
        return self._done(as_str(event.get("result")).strip(), suffix)

    def _failed(self, event: dict[str, Any], subtype: str, suffix: str) -> ParsedLine:
        message = _errors(event) or first_line(as_str(event.get("result"))) or self.warning or subtype
        return self.fail(message, f"agent failed: {message}{suffix}")

    def _done(self, final: str, suffix: str) -> ParsedLine:
        # The model's last words were shown when it said them; the closing event repeats them.
        said = final + "\n" if final and final != self._last_text else ""
        return with_progress(ParsedLine(display=f"{said}done{suffix}", status="done"), final)


_Handler = Callable[[ClaudeStreamParser, dict[str, Any]], ParsedLine]
_EVENTS: dict[str, _Handler] = {
    "system": ClaudeStreamParser._system,
    "assistant": ClaudeStreamParser._assistant,
    "user": ClaudeStreamParser._tool_results,
    "result": ClaudeStreamParser._result,
}
_SYSTEM_EVENTS: dict[str, _Handler] = {
    "init": ClaudeStreamParser._init,
    "api_retry": ClaudeStreamParser._api_retry,
    "thinking_tokens": ClaudeStreamParser._thinking_tokens,
}


def _said(block: dict[str, Any]) -> str:
    """The model's words in a text block; "" for another kind of block or a blank one."""
    text = as_str(block.get("text")) if block.get("type") == "text" else ""
    return text if text.strip() else ""


def _errors(event: dict[str, Any]) -> str:
    """The closing event's `errors`, first line of each, joined."""
    return "; ".join(
        first_line(as_str(item)) for item in as_list(event.get("errors")) if as_str(item).strip()
    )


def _result_details(event: dict[str, Any]) -> str:
    """ " (12 turns, $0.04, 31s)" from the closing event, or "" when it says none of these."""
    details = []
    if (turns := as_number(event.get("num_turns"))) is not None:
        details.append(f"{int(turns)} turns")
    if (cost := as_number(event.get("total_cost_usd"))) is not None:
        details.append(f"${cost:.2f}")
    if (millis := as_number(event.get("duration_ms"))) is not None:
        details.append(f"{millis / 1000:.0f}s")
    return f" ({', '.join(details)})" if details else ""


def _claude_usage(usage: dict[str, Any], cost: float | None) -> Usage:
    # Anthropic counts cached prompt tokens apart from the rest; all of them were sent.
    sent = sum(
        as_int(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(sent, as_int(usage.get("output_tokens")), cost)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(as_str(as_dict(part).get("text")) for part in as_list(content))
