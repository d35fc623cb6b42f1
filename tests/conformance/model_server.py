"""A scripted model server standing in for the vendors' APIs, so the real agent CLIs can run in tests.

    python -m tests.conformance.model_server [--port N]

Stdlib only. It listens on 127.0.0.1 and speaks what the CLIs call:

- Anthropic Messages (`POST /v1/messages`, SSE or JSON; `count_tokens`; `HEAD /`): Claude Code
- OpenAI Responses (`POST /v1/responses`, SSE): Codex
- OpenAI Chat Completions (`POST /v1/chat/completions`, SSE or JSON): opencode, aider
- Gemini (`:streamGenerateContent?alt=sse`, `:generateContent`, `:countTokens`): Gemini CLI

The "model" reads the tuiorch prompt it is given (the task's worktree, id, commit message and body, or a
conflict-resolver prompt) and plans its turns from it, so one server serves any number of tasks and agents
at once. A turn's place in the plan is the number of tool results already in the conversation, so the server
keeps no session state. The task body may steer it with lines of its own:

    ```write path/to/file          the file to write (the demo agent's block, so one TASKS.md serves both)
    contents
    ```
    model: fail 529               answer every call of this task with that HTTP status
    model: loop                   call a harmless shell tool forever (for turn limits)
    model: hang                   accept the call and never answer
    model: no-commit              write, but do not commit
    model: slow 2                 wait 2 seconds before each answer
    model: think                  think first (a thinking block in the first answer, where the format has one)
    model: escape                 after committing, try to move main and write outside the worktree (ESCAPES)

Without tools in the request (aider, or a side request such as opencode's title), the model answers in text:
whole-file edit blocks for a task prompt, a short title otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tuiorch.demo_plan import (
    DemoError,
    ResolvePrompt,
    TaskPrompt,
    parse_body,
    parse_prompt,
)
from tuiorch.prompt import RESOLVE_MARKER, TASK_HEADING

__all__ = ["ModelServer", "Plan", "RecordedRequest", "Turn", "plan_for_prompt"]

# Per-turn token usage every response reports; tests assert the CLIs pass these numbers on.
INPUT_TOKENS = 1200
OUTPUT_TOKENS = 80

# The prompts always name their worktree; parse_prompt's fallback folder is never used.
_NOWHERE_CWD = Path(".")
_MODEL_LINE = re.compile(r"^model:[ \t]*(?P<word>[a-z-]+)(?:[ \t]+(?P<arg>\S+))?[ \t]*$", re.MULTILINE)
_COMMIT_FORMAT = re.compile(r"Use commit message format:\n\s*```\n(?P<message>.*?)\n\s*```", re.DOTALL)


# -- the plan (pure) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One model answer: some text, then at most one tool call (read a file, write one, or run a command)."""

    text: str = ""
    write: tuple[str, str] | None = None  # (relative path, full contents)
    shell: str = ""
    thinking: str = ""
    read: str = ""  # a relative path: some CLIs refuse to overwrite a file the model has not read


@dataclass(frozen=True)
class Plan:
    """What the model does for one prompt. `fail`/`hang`/`loop` override the turns."""

    turns: tuple[Turn, ...] = ()
    fail: int = 0
    hang: bool = False
    loop: bool = False
    task_id: str = ""
    #: Seconds to wait before each answer (so a test can watch the CLI's live status).
    delay: float = 0.0

    def turn(self, index: int) -> Turn:
        if self.loop:
            return Turn(text=f"PROGRESS: {index + 1}/1000 still looking", shell=f"echo looking {index + 1}")
        if index < len(self.turns):
            return self.turns[index]
        return Turn(text="Done.")


def commit_message(prompt: str) -> str:
    """The commit message the tuiorch prompt asks for (its indented code block), or a plain one."""
    found = _COMMIT_FORMAT.search(prompt)
    if not found:
        return "chore: agent work"
    return "\n".join(line[2:] if line.startswith("  ") else line for line in found["message"].split("\n"))


#: A trailer the scripted model adds to the commits it makes, so tests can tell them from tuiorch's own.
MODEL_TRAILER = "Made-By: scripted model"


#: What a hostile model tries once it has committed (each attempt's outcome printed, the tool call succeeding
#: as a whole): move the user's main and another branch, push there, write the user's checkout.
ESCAPES = "; ".join(
    f"{command} && echo ESCAPED || echo REFUSED"
    for command in (
        'git --git-dir="$TUIORCH_GIT_DIR" update-ref refs/heads/main HEAD',
        'git --git-dir="$TUIORCH_GIT_DIR" branch -f other HEAD',
        'git push -q "$TUIORCH_GIT_DIR" HEAD:main',
        'echo pwned > "$TUIORCH_GIT_DIR/../README.md"',
    )
)


def commit_command(message: str) -> str:
    subject, _, rest = message.partition("\n")
    body = rest.strip("\n")
    argv = ["git", "commit", "-q", "-m", subject, "-m", f"{body}\n{MODEL_TRAILER}" if body else MODEL_TRAILER]
    return "git add -A && " + shlex.join(argv)


def _resolved_text(prompt: str, path: str) -> str | None:
    """Both sides of `path` (the base branch's version, then the task's), from the resolver prompt's copies."""
    section = re.search(
        rf"^### {re.escape(path)}\n(?P<body>.*?)(?=^### |\Z)", prompt, re.DOTALL | re.MULTILINE
    )
    if not section:
        return None
    # Each side by its label (a CLI may append text of its own after the prompt, code blocks included).
    sides = []
    for label in (r"version \(ours\)", r"Task branch version \(theirs\)"):
        found = re.search(
            rf"{label}:\n(?:(`{{3,}})\n(.*?)^\1$|\(the file does not exist)",
            section["body"],
            re.DOTALL | re.MULTILINE,
        )
        if not found:
            return None
        sides.append(found.group(2) or "")
    ours, theirs = sides
    return ours + "".join(
        line for line in theirs.splitlines(keepends=True) if line not in ours.splitlines(True)
    )


def plan_for_prompt(prompt: str) -> Plan:
    """The turns for a tuiorch task or resolver prompt; any other prompt gets a short text answer."""
    if RESOLVE_MARKER in prompt:
        return _resolve_plan(prompt)
    if TASK_HEADING not in prompt:
        return Plan(turns=(Turn(text="OK."),))
    try:
        parsed = parse_prompt(prompt, cwd=_NOWHERE_CWD)
    except DemoError:
        return Plan(turns=(Turn(text="I cannot read this task."),))
    assert isinstance(parsed, TaskPrompt)
    directives = {m["word"]: m["arg"] or "" for m in _MODEL_LINE.finditer(parsed.body)}
    try:
        body_plan = parse_body(parsed.body)
    except DemoError as exc:
        return Plan(turns=(Turn(text=f"I cannot follow this task: {exc}"),), task_id=parsed.task_id)
    writes = [edit for edit in body_plan.edits if edit.mode == "write"]
    # Commit only when the prompt asks for it (it does not where the CLI's sandbox forbids writing .git).
    commits = _COMMIT_FORMAT.search(prompt) is not None and "no-commit" not in directives
    turns: list[Turn] = []
    total = len(writes) + (1 if commits else 0)
    for number, edit in enumerate(writes, start=1):
        turns.append(
            Turn(text=f"PROGRESS: {number}/{total} writing {edit.path}", write=(edit.path, edit.content))
        )
    if commits:
        message = commit_message(prompt)
        turns.append(Turn(text=f"PROGRESS: {total}/{total} committing", shell=commit_command(message)))
    if "escape" in directives:
        turns.append(Turn(text="Now for something else.", shell=ESCAPES))
    turns.append(Turn(text=f"Done: task {parsed.task_id} is written{' and committed' if commits else ''}."))
    if "think" in directives:
        # Thinking comes in the first answer's own block (a thinking-only answer makes some CLIs ask again).
        turns[0] = replace(turns[0], thinking="Let me think about which files to write.")
    fail = directives.get("fail", "")
    slow = directives.get("slow", "")
    return Plan(
        turns=tuple(turns),
        fail=int(fail) if fail.isdigit() else 0,
        hang="hang" in directives,
        loop="loop" in directives,
        task_id=parsed.task_id,
        delay=float(slow) if re.fullmatch(r"\d+(\.\d+)?", slow) else 0.0,
    )


def _resolve_plan(prompt: str) -> Plan:
    try:
        parsed = parse_prompt(prompt, cwd=_NOWHERE_CWD)
    except DemoError:
        return Plan(turns=(Turn(text="I cannot read this conflict."),))
    assert isinstance(parsed, ResolvePrompt)
    turns = []
    for number, path in enumerate(parsed.paths, start=1):
        text = _resolved_text(prompt, path)
        if text is None:
            continue
        turns.append(Turn(text=f"Reading {path}", read=path))
        turns.append(
            Turn(text=f"PROGRESS: {number}/{len(parsed.paths)} resolving {path}", write=(path, text))
        )
    if "git commit --no-edit" in prompt:
        turns.append(
            Turn(text="PROGRESS: committing the merge", shell="git add -A && git commit -q --no-edit")
        )
    turns.append(Turn(text="Resolved: both sides kept."))
    return Plan(turns=tuple(turns), task_id=parsed.task_id)


# aider's example edit in its prompt shows the fence it wants (it picks one that no file in the chat holds).
_AIDER_EXAMPLE_FENCE = re.compile(r"show_greeting\.py\n(?P<fence>\S+)\n")


def aider_fence(request_text: str) -> tuple[str, str]:
    found = _AIDER_EXAMPLE_FENCE.search(request_text)
    opening = found["fence"] if found else "```"
    closing = "</" + opening[1:] if opening.startswith("<") else opening
    return opening, closing


def whole_file_reply(plan: Plan, fence: tuple[str, str] = ("```", "```")) -> str:
    """aider's "whole" edit format: a file name line, then the full contents in a fence."""
    parts: list[str] = []
    for turn in plan.turns:
        if turn.write:
            path, content = turn.write
            body = content if content.endswith("\n") or not content else content + "\n"
            parts += [turn.text, f"{path}\n{fence[0]}\n{body}{fence[1]}"]
    parts.append("Done: the files are written.")
    return "\n\n".join(part for part in parts if part) + "\n"


# -- tools as each CLI offers them (pure) ------------------------------------------------------------------

_WRITE_TOOLS = ("Write", "write", "write_file", "create_file")
_READ_TOOLS = ("Read", "read", "read_file")
_SHELL_TOOLS = ("Bash", "bash", "run_shell_command", "exec_command", "shell", "local_shell", "shell_command")


@dataclass(frozen=True)
class Tool:
    name: str
    properties: dict[str, Any]


def _pick(tools: dict[str, Tool], names: tuple[str, ...]) -> Tool | None:
    return next((tools[name] for name in names if name in tools), None)


def _key(tool: Tool, candidates: tuple[str, ...], default: str) -> str:
    return next((key for key in candidates if key in tool.properties), default)


def tool_call(turn: Turn, tools: dict[str, Tool]) -> tuple[str, dict[str, Any]] | None:
    """(tool name, arguments) for the turn's action, in the tool shapes this request offers."""
    shell = _pick(tools, _SHELL_TOOLS)
    if turn.read:
        reader = _pick(tools, _READ_TOOLS)
        if reader is not None:
            path_key = _key(reader, ("file_path", "filePath", "path", "absolute_path"), "file_path")
            return reader.name, {path_key: turn.read}
        return _shell_call(shell, f"cat {shlex.quote(turn.read)}") if shell else None
    if turn.write:
        path, content = turn.write
        writer = _pick(tools, _WRITE_TOOLS)
        if writer is not None:
            path_key = _key(writer, ("file_path", "filePath", "path", "absolute_path"), "file_path")
            return writer.name, {path_key: path, "content": content}
        command = f"mkdir -p {shlex.quote(_parent(path))} && printf '%s' {shlex.quote(content)} > {shlex.quote(path)}"
        return _shell_call(shell, command) if shell else None
    if turn.shell:
        return _shell_call(shell, turn.shell) if shell else None
    return None


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else "."


def _shell_call(tool: Tool, command: str) -> tuple[str, dict[str, Any]]:
    key = _key(tool, ("command", "cmd"), "command")
    spec = tool.properties.get(key, {})
    value: Any = (
        ["bash", "-lc", command] if isinstance(spec, dict) and spec.get("type") == "array" else command
    )
    arguments: dict[str, Any] = {key: value}
    if "description" in tool.properties:
        arguments["description"] = "run a command"
    return tool.name, arguments


# -- recorded requests ---------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    vendor: str
    body: Any
    task_id: str = ""
    status: int = 200
    at: float = field(default_factory=time.time)


# -- the vendors' wire formats ------------------------------------------------------------------------------


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


def _texts(value: Any) -> Iterator[str]:
    """Every string under `text`/`content` keys of a request, in order (the prompt is among them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in ("text", "content", "parts", "input"):
            if key in value:
                yield from _texts(value[key])


def _prompt_of(texts: Iterator[str]) -> str:
    collected = list(texts)
    for text in collected:
        if RESOLVE_MARKER in text or TASK_HEADING in text:
            return text
    return collected[0] if collected else ""


class _Vendor:
    """One API's request reading and answer writing."""

    name = ""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def prompt(self) -> str:
        raise NotImplementedError

    def tool_results(self) -> int:
        raise NotImplementedError

    def tools(self) -> dict[str, Tool]:
        raise NotImplementedError

    def streaming(self) -> bool:
        return bool(self.body.get("stream"))

    def tools_refused(self) -> bool:
        """The request offers tools but says not to use them (tool_choice none, or a step-limit notice)."""
        if self.body.get("tool_choice") == "none":
            return True
        messages = self.body.get("messages") or []
        return bool(messages) and "MAXIMUM STEPS REACHED" in "".join(_texts(messages[-1]))

    def error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError


_ERROR_WORDS = {401: "invalid api key", 429: "rate limited", 500: "internal server error", 529: "overloaded"}


def _openai_error(status: int) -> dict[str, Any]:
    """The error body both OpenAI dialects (Responses and Chat Completions) send."""
    return {"error": {"message": _ERROR_WORDS.get(status, f"error {status}"), "type": "server_error", "code": str(status)}}


class _Anthropic(_Vendor):
    name = "anthropic"

    def prompt(self) -> str:
        return _prompt_of(_texts([m for m in self.body.get("messages", []) if m.get("role") == "user"]))

    def tool_results(self) -> int:
        return sum(
            1
            for message in self.body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        )

    def tools(self) -> dict[str, Tool]:
        return {
            tool["name"]: Tool(tool["name"], (tool.get("input_schema") or {}).get("properties", {}))
            for tool in self.body.get("tools", [])
            if isinstance(tool, dict) and "name" in tool
        }

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
            status, "api_error"
        )
        return {
            "type": "error",
            "error": {"type": kind, "message": _ERROR_WORDS.get(status, f"error {status}")},
        }

    def blocks(self, turn: Turn, call: tuple[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if turn.thinking:
            blocks.append({"type": "thinking", "thinking": turn.thinking, "signature": "c2lnbmF0dXJl"})
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        if call:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:20],
                    "name": call[0],
                    "input": call[1],
                }
            )
        return blocks

    def answer(self, turn: Turn, call: tuple[str, dict[str, Any]] | None) -> Iterator[bytes] | dict[str, Any]:
        blocks = self.blocks(turn, call)
        message = {
            "id": "msg_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": self.body.get("model", "fake-model"),
            "content": blocks,
            "stop_reason": "tool_use" if call else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
        }
        if not self.streaming():
            return message
        return self._stream(message, blocks)

    def _stream(self, message: dict[str, Any], blocks: list[dict[str, Any]]) -> Iterator[bytes]:
        start = dict(
            message, content=[], stop_reason=None, usage={"input_tokens": INPUT_TOKENS, "output_tokens": 1}
        )
        yield _sse("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                delta = {"type": "text_delta", "text": block["text"]}
            elif block["type"] == "thinking":
                first = {"type": "thinking", "thinking": "", "signature": ""}
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                    },
                )
                delta = {"type": "signature_delta", "signature": block["signature"]}
            else:
                first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": OUTPUT_TOKENS},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


class _Responses(_Vendor):
    name = "openai-responses"

    def prompt(self) -> str:
        items = self.body.get("input", [])
        if isinstance(items, str):
            return items
        return _prompt_of(
            _texts([item for item in items if isinstance(item, dict) and item.get("role") == "user"])
        )

    def tool_results(self) -> int:
        items = self.body.get("input", [])
        return sum(
            1
            for item in items
            if isinstance(item, dict) and str(item.get("type", "")).endswith("call_output")
        )

    def tools(self) -> dict[str, Tool]:
        found = {}
        for tool in self.body.get("tools", []):
            if isinstance(tool, dict) and tool.get("name"):
                found[tool["name"]] = Tool(tool["name"], (tool.get("parameters") or {}).get("properties", {}))
        return found

    def error_body(self, status: int) -> dict[str, Any]:
        return _openai_error(status)

    def answer(self, turn: Turn, call: tuple[str, dict[str, Any]] | None) -> Iterator[bytes]:
        response_id = "resp_" + uuid.uuid4().hex[:20]
        base = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": self.body.get("model", "fake-model"),
        }
        yield _sse(
            "response.created",
            {"type": "response.created", "response": dict(base, status="in_progress", output=[])},
        )
        output: list[dict[str, Any]] = []
        index = 0
        if turn.thinking:
            item = {
                "type": "reasoning",
                "id": "rs_" + uuid.uuid4().hex[:16],
                "summary": [{"type": "summary_text", "text": turn.thinking}],
            }
            yield _sse(
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": index, "item": dict(item, summary=[])},
            )
            yield _sse(
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": index, "item": item},
            )
            output.append(item)
            index += 1
        if turn.text:
            item_id = "msg_" + uuid.uuid4().hex[:16]
            item = {
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
            yield _sse(
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": dict(item, content=[], status="in_progress"),
                },
            )
            yield _sse(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": index,
                    "content_index": 0,
                    "delta": turn.text,
                },
            )
            yield _sse(
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": index, "item": item},
            )
            output.append(item)
            index += 1
        if call:
            item = {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:16],
                "call_id": "call_" + uuid.uuid4().hex[:16],
                "name": call[0],
                "arguments": json.dumps(call[1]),
                "status": "completed",
            }
            yield _sse(
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": dict(item, arguments=""),
                },
            )
            yield _sse(
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": index, "item": item},
            )
            output.append(item)
        usage = {
            "input_tokens": INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": OUTPUT_TOKENS,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }
        yield _sse(
            "response.completed",
            {
                "type": "response.completed",
                "response": dict(base, status="completed", output=output, usage=usage),
            },
        )


class _Chat(_Vendor):
    name = "openai-chat"

    def prompt(self) -> str:
        return _prompt_of(_texts([m for m in self.body.get("messages", []) if m.get("role") == "user"]))

    def system(self) -> str:
        return "\n".join(_texts([m for m in self.body.get("messages", []) if m.get("role") == "system"]))

    def tool_results(self) -> int:
        return sum(1 for message in self.body.get("messages", []) if message.get("role") == "tool")

    def tools(self) -> dict[str, Tool]:
        found = {}
        for tool in self.body.get("tools", []) or []:
            function = tool.get("function", {}) if isinstance(tool, dict) else {}
            if function.get("name"):
                found[function["name"]] = Tool(
                    function["name"], (function.get("parameters") or {}).get("properties", {})
                )
        return found

    def error_body(self, status: int) -> dict[str, Any]:
        return _openai_error(status)

    def answer(self, turn: Turn, call: tuple[str, dict[str, Any]] | None) -> Iterator[bytes] | dict[str, Any]:
        chat_id = "chatcmpl-" + uuid.uuid4().hex[:20]
        model = self.body.get("model", "fake-model")
        usage = {
            "prompt_tokens": INPUT_TOKENS,
            "completion_tokens": OUTPUT_TOKENS,
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }
        tool_calls = []
        if call:
            tool_calls = [
                {
                    "id": "call_" + uuid.uuid4().hex[:16],
                    "type": "function",
                    "function": {"name": call[0], "arguments": json.dumps(call[1])},
                }
            ]
        finish = "tool_calls" if call else "stop"
        if not self.streaming():
            message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return {
                "id": chat_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        return self._stream(chat_id, model, turn, tool_calls, finish, usage)

    def _stream(
        self,
        chat_id: str,
        model: str,
        turn: Turn,
        tool_calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int],
    ) -> Iterator[bytes]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return _sse(
                None,
                {
                    "id": chat_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                },
            )

        yield chunk({"role": "assistant", "content": ""})
        if turn.thinking:
            yield chunk({"reasoning_content": turn.thinking})
        if turn.text:
            yield chunk({"content": turn.text})
        for index, call in enumerate(tool_calls):
            yield chunk({"tool_calls": [dict(call, index=index)]})
        yield chunk({}, finish)
        yield _sse(
            None,
            {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            },
        )
        yield b"data: [DONE]\n\n"


class _Gemini(_Vendor):
    name = "gemini"

    def __init__(self, body: dict[str, Any], streaming: bool) -> None:
        super().__init__(body)
        self._streaming = streaming

    def streaming(self) -> bool:
        return self._streaming

    def prompt(self) -> str:
        return _prompt_of(
            _texts([c for c in self.body.get("contents", []) if c.get("role", "user") == "user"])
        )

    def tool_results(self) -> int:
        return sum(
            1
            for content in self.body.get("contents", [])
            for part in content.get("parts", [])
            if isinstance(part, dict) and "functionResponse" in part
        )

    def tools(self) -> dict[str, Tool]:
        found = {}
        for tool in self.body.get("tools", []) or []:
            for declaration in tool.get("functionDeclarations", []) if isinstance(tool, dict) else []:
                schema = declaration.get("parametersJsonSchema") or declaration.get("parameters") or {}
                found[declaration["name"]] = Tool(declaration["name"], schema.get("properties", {}))
        return found

    def error_body(self, status: int) -> dict[str, Any]:
        word = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {
            "error": {"code": status, "message": _ERROR_WORDS.get(status, f"error {status}"), "status": word}
        }

    def answer(self, turn: Turn, call: tuple[str, dict[str, Any]] | None) -> Iterator[bytes] | dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if turn.thinking:
            parts.append({"text": turn.thinking, "thought": True})
        if turn.text:
            parts.append({"text": turn.text})
        if call:
            parts.append({"functionCall": {"name": call[0], "args": call[1]}})
        if not parts:
            parts.append({"text": ""})
        response = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": INPUT_TOKENS,
                "candidatesTokenCount": OUTPUT_TOKENS,
                "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS,
            },
            "modelVersion": "fake-model",
        }
        if not self.streaming():
            return response
        return iter([_sse(None, response)])


# -- the server ------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the recorded requests are the log."""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.server.owner.record(RecordedRequest("HEAD", self.path, "", None))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.server.owner.record(RecordedRequest("GET", self.path, "", None))
        if urlsplit(self.path).path.rstrip("/").endswith("/models"):
            self._json(
                200,
                {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "tests"}]},
            )
        else:
            self._json(200, {})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else self._read_chunked()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        self.server.owner.serve(self, body)

    def _read_chunked(self) -> bytes:
        if "chunked" not in (self.headers.get("Transfer-Encoding") or ""):
            return b""
        data = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ModelServer


class ModelServer:
    """The scripted model on 127.0.0.1 (port 0: a free one). Use as a context manager or start()/stop().

    `requests` records every call; `overrides` maps a task id to a Plan that replaces the prompt's own.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _HTTPServer(("127.0.0.1", port), _Handler)
        self._server.owner = self
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.overrides: dict[str, Plan] = {}

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def calls(self, vendor: str = "", task_id: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            found = list(self.requests)
        return [
            r
            for r in found
            if (not vendor or r.vendor == vendor) and (task_id is None or r.task_id == task_id)
        ]

    # -- answering -------------------------------------------------------------------------------------------

    def serve(self, handler: _Handler, body: dict[str, Any]) -> None:
        split = urlsplit(handler.path)
        path = split.path
        if path.endswith("/count_tokens") or path.endswith(":countTokens"):
            self.record(RecordedRequest("POST", handler.path, "count", body))
            payload = (
                {"totalTokens": INPUT_TOKENS}
                if path.endswith(":countTokens")
                else {"input_tokens": INPUT_TOKENS}
            )
            handler._json(200, payload)
            return
        vendor: _Anthropic | _Responses | _Chat | _Gemini
        if path.endswith("/messages"):
            vendor = _Anthropic(body)
        elif path.endswith("/responses"):
            vendor = _Responses(body)
        elif path.endswith("/chat/completions"):
            vendor = _Chat(body)
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            streaming = ":streamGenerateContent" in path and parse_qs(split.query).get("alt") == ["sse"]
            vendor = _Gemini(body, streaming or ":streamGenerateContent" in path)
        else:
            self.record(RecordedRequest("POST", handler.path, "unknown", body, status=404))
            handler._json(404, {"error": {"message": f"no such endpoint: {path}"}})
            return
        prompt = vendor.prompt()
        plan = plan_for_prompt(prompt)
        plan = self.overrides.get(plan.task_id, plan)
        tools = vendor.tools()
        record = RecordedRequest("POST", handler.path, vendor.name, body, task_id=plan.task_id)
        self.record(record)
        if plan.fail:
            record.status = plan.fail
            # A short retry-after, as real APIs send with their errors: the CLIs that honour it retry quickly.
            handler._json(
                plan.fail, vendor.error_body(plan.fail), {"retry-after-ms": "50", "retry-after": "0"}
            )
            return
        if plan.hang:
            self._hang(handler, vendor)
            return
        if plan.delay and self._stopping.wait(plan.delay):
            return
        if not tools:
            turn = self._tool_less_turn(vendor, plan)
            call = None
        elif vendor.tools_refused():
            # The CLI's own step limit: it asks for a text-only answer, as a real model would give.
            turn, call = Turn(text="I stopped: the step limit was reached before the task was done."), None
        else:
            turn = plan.turn(vendor.tool_results())
            call = tool_call(turn, tools)
        answer = vendor.answer(turn, call)
        if isinstance(answer, dict):
            handler._json(200, answer)
        else:
            self._stream(handler, answer)

    def _tool_less_turn(self, vendor: _Vendor, plan: Plan) -> Turn:
        """No tools offered: a side request (a title, a summary) or aider, whose edits are in the text."""
        system = vendor.system() if isinstance(vendor, _Chat) else ""
        wants_title = "title" in system.lower() and "aider" not in system.lower()
        if plan.task_id and not wants_title and plan.turns and any(turn.write for turn in plan.turns):
            return Turn(
                text=whole_file_reply(plan, aider_fence("\n".join(_texts(vendor.body.get("messages", [])))))
            )
        if wants_title:
            return Turn(text=f"Task {plan.task_id}" if plan.task_id else "A task")
        return Turn(text="OK.")

    def _stream(self, handler: _Handler, chunks: Iterator[bytes]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            for chunk in chunks:
                handler.wfile.write(chunk)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _hang(self, handler: _Handler, vendor: _Vendor) -> None:
        """Accept and never answer, until the client goes away or the server stops."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream" if vendor.streaming() else "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        while not self._stopping.wait(1.0):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description="A scripted model server on 127.0.0.1 for the agent CLIs.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--log", action="store_true", help="print each request's path and body size")
    args = parser.parse_args()
    server = ModelServer(args.port).start()
    print(server.url, flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            if args.log:
                calls = server.calls()
                for request in calls[seen:]:
                    print(
                        f"{request.method} {request.path} {request.vendor} task={request.task_id} -> {request.status}",
                        flush=True,
                    )
                seen = len(calls)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
