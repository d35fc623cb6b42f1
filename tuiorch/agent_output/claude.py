"""Claude Code's stream-json output (`claude -p --output-format stream-json --verbose`)."""

from __future__ import annotations

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
        kind = event.get("type")
        if kind == "system":
            return self._system(event)
        if kind == "assistant":
            return self._assistant(as_dict(event.get("message")))
        if kind == "user":
            return self._tool_results(as_dict(event.get("message")))
        if kind == "result":
            return self._result(event)
        return ParsedLine()  # stream_event deltas and anything newer: the full message follows

    def _system(self, event: dict[str, Any]) -> ParsedLine:
        subtype = event.get("subtype")
        if subtype == "init":
            model = as_str(event.get("model"))
            return ParsedLine(display=f"session started{f' ({model})' if model else ''}", status="starting")
        if subtype == "api_retry":
            attempt, most = as_int(event.get("attempt")), as_int(event.get("max_retries"))
            cause = event.get("error_status") or as_str(event.get("error")) or "an error"
            delay = as_number(event.get("retry_delay_ms"))
            status = f"retrying API {attempt}/{most} after {cause}"
            self.warning = f"API error {cause} (retried {attempt} of {most} times)"
            wait = f" in {delay / 1000:.0f}s" if delay is not None else ""
            return ParsedLine(display=f"{status}{wait}", status=status)
        if subtype == "thinking_tokens":
            return ParsedLine(status="thinking")
        return ParsedLine()

    def _assistant(self, message: dict[str, Any]) -> ParsedLine:
        self._count(message)
        synthetic = message.get("model") == "<synthetic>"
        shown, texts, status = self._blocks(as_list(message.get("content")))
        if texts and not synthetic:
            self._last_text = "\n".join(texts).strip()
        if synthetic and texts:
            # Claude Code's own words for a failed API call ("API Error: 529 ..."), not the model's.
            self.warning = first_line(texts[0])
            return ParsedLine(display="\n".join(shown), status=clip(self.warning, 80))
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
            if block.get("type") == "text" and as_str(block.get("text")).strip():
                texts.append(block["text"])
                shown.append(block["text"].rstrip())
            elif block.get("type") == "tool_use":
                name = as_str(block.get("name")) or "tool"
                self.tools[as_str(block.get("id"))] = name
                shown.append("→ " + tool_summary(name, block.get("input")))
                status = f"running tool {name}"
            elif block.get("type") in ("thinking", "redacted_thinking"):
                status = status or "thinking"
        return shown, texts, status

    def _count(self, message: dict[str, Any]) -> None:
        usage = as_dict(message.get("usage"))
        if not usage or message.get("model") == "<synthetic>":
            return
        self._messages[as_str(message.get("id")) or str(len(self._messages))] = _claude_usage(usage, None)
        total = Usage()
        for counted in self._messages.values():
            total = total + counted
        self.usage = total

    def _tool_results(self, message: dict[str, Any]) -> ParsedLine:
        # Tool output is noise in a pane (the log file has it), except when a tool failed.
        failures = []
        for block in as_list(message.get("content")):
            block = as_dict(block)
            if block.get("type") == "tool_result" and block.get("is_error") is True:
                name = self.tools.get(as_str(block.get("tool_use_id")), "tool")
                failures.append(failure(name, _content_text(block.get("content"))))
        return ParsedLine(display="\n".join(failures) or None, status="thinking")

    def _result(self, event: dict[str, Any]) -> ParsedLine:
        subtype = as_str(event.get("subtype")) or "success"
        if isinstance(event.get("usage"), dict) or as_number(event.get("total_cost_usd")) is not None:
            self.usage = _claude_usage(as_dict(event.get("usage")), as_number(event.get("total_cost_usd")))
        suffix = _result_details(event)
        if event.get("is_error") is True or subtype != "success":
            message = _errors(event) or first_line(as_str(event.get("result"))) or self.warning or subtype
            return self.fail(message, f"agent failed: {message}{suffix}")
        final = as_str(event.get("result")).strip()
        repeated = final == self._last_text  # already shown as the model said it
        display = (final + "\n" if final and not repeated else "") + f"done{suffix}"
        return with_progress(ParsedLine(display=display, status="done"), final)


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
