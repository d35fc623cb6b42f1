"""Codex's JSON lines (`codex exec --json`): thread and turn events, and the items a turn works through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuiorch.agent_output.base import (
    JsonParser,
    ParsedLine,
    Progress,
    Usage,
    as_dict,
    as_int,
    as_list,
    as_str,
    clip,
    first_line,
    with_progress,
)


class CodexJsonParser(JsonParser):
    """`codex exec --json`: thread/turn events and item.started/updated/completed."""

    def handle(self, event: dict[str, Any]) -> ParsedLine:
        kind = as_str(event.get("type"))
        if kind in ("item.started", "item.updated", "item.completed"):
            return _item(kind.split(".")[1], as_dict(event.get("item")))
        handler = _EVENTS.get(kind)
        return handler(self, event) if handler else ParsedLine()

    def _thread_started(self, event: dict[str, Any]) -> ParsedLine:
        return ParsedLine(display="session started", status="starting")

    def _turn_started(self, event: dict[str, Any]) -> ParsedLine:
        return ParsedLine(status="thinking")

    def _turn_completed(self, event: dict[str, Any]) -> ParsedLine:
        usage = as_dict(event.get("usage"))
        turn = Usage(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")))
        self.usage = turn if self.usage is None else self.usage + turn
        detail = f" ({turn.input_tokens} in / {turn.output_tokens} out tokens)" if usage else ""
        return ParsedLine(display=f"done{detail}", status="done")

    def _turn_failed(self, event: dict[str, Any]) -> ParsedLine:
        message = as_str(as_dict(event.get("error")).get("message")) or self.warning or "turn failed"
        return self.fail(message, f"agent failed: {first_line(message)}")

    def _error(self, event: dict[str, Any]) -> ParsedLine:
        # Often recoverable ("Reconnecting... 2/5"): turn.failed says when the run failed.
        message = first_line(as_str(event.get("message"))) or "error"
        self.warning = message
        return ParsedLine(display=f"error: {message}", status=clip(message, 80))


_EVENTS: dict[str, Callable[[CodexJsonParser, dict[str, Any]], ParsedLine]] = {
    "thread.started": CodexJsonParser._thread_started,
    "turn.started": CodexJsonParser._turn_started,
    "turn.completed": CodexJsonParser._turn_completed,
    "turn.failed": CodexJsonParser._turn_failed,
    "error": CodexJsonParser._error,
}


def _item(phase: str, item: dict[str, Any]) -> ParsedLine:
    """One item event: a running item sets the status, a completed one is shown."""
    kind = as_str(item.get("type"))
    if kind == "todo_list":
        return _todo_list(item)
    if kind == "command_execution":
        return _command(phase, item)
    if phase != "completed":
        return _running(kind, item)
    handler = _COMPLETED.get(kind)
    return handler(item) if handler else ParsedLine()


def _todo_list(item: dict[str, Any]) -> ParsedLine:
    todos = [as_dict(todo) for todo in as_list(item.get("items"))]
    done = sum(1 for todo in todos if todo.get("completed") is True)
    return ParsedLine(progress=Progress(None, done, len(todos), "") if todos else None)


def _command(phase: str, item: dict[str, Any]) -> ParsedLine:
    command = clip(as_str(item.get("command")))
    if phase != "completed":
        return ParsedLine(status=clip(f"running {command}", 80))
    code = item.get("exit_code")
    return ParsedLine(display=f"$ {command}" + (f"  [exit {code}]" if code not in (None, 0) else ""))


def _running(kind: str, item: dict[str, Any]) -> ParsedLine:
    if kind == "file_change":
        return ParsedLine(status="editing files")
    if kind == "mcp_tool_call":
        return ParsedLine(status=f"running tool {as_str(item.get('tool'))}")
    if kind == "reasoning":
        return ParsedLine(status="thinking")
    return ParsedLine()


def _agent_message(item: dict[str, Any]) -> ParsedLine:
    text = as_str(item.get("text"))
    return with_progress(ParsedLine(display=text.rstrip() or None), text)


def _reasoning(item: dict[str, Any]) -> ParsedLine:
    text = as_str(item.get("text")).strip()
    return ParsedLine(display=f"(thinking) {first_line(text)}" if text else None, status="thinking")


def _file_change(item: dict[str, Any]) -> ParsedLine:
    changes = [as_dict(change) for change in as_list(item.get("changes"))]
    listed = ", ".join(f"{as_str(c.get('kind')) or 'edit'} {as_str(c.get('path'))}" for c in changes)
    return ParsedLine(display=clip(f"edited: {listed}") if listed else None)


def _tool_call(item: dict[str, Any]) -> ParsedLine:
    name = ".".join(part for part in (as_str(item.get("server")), as_str(item.get("tool"))) if part)
    failed = item.get("error") or item.get("status") == "failed"
    return ParsedLine(display=f"→ {name or 'tool'}" + ("  [failed]" if failed else ""))


def _web_search(item: dict[str, Any]) -> ParsedLine:
    return ParsedLine(display=clip(f"web search: {as_str(item.get('query'))}"))


def _item_error(item: dict[str, Any]) -> ParsedLine:
    return ParsedLine(display=f"error: {first_line(as_str(item.get('message')))}")


_COMPLETED: dict[str, Callable[[dict[str, Any]], ParsedLine]] = {
    "agent_message": _agent_message,
    "reasoning": _reasoning,
    "file_change": _file_change,
    "mcp_tool_call": _tool_call,
    "web_search": _web_search,
    "error": _item_error,
}
