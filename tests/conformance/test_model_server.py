"""The scripted model server itself: it plans from tuiorch's prompts and answers in each vendor's wire format.

These run without any agent CLI; the conformance tests beside them drive the real CLIs against it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.model_server import (
    INPUT_TOKENS,
    ModelServer,
    Plan,
    Turn,
    commit_message,
    plan_for_prompt,
)
from tuiorch.prompt import BUILTIN_TEMPLATE, RESOLVE_TEMPLATE, render_prompt, render_resolve_prompt
from tuiorch.tasks import parse_tasks_md

BODY = "```write notes/hello.txt\nhello world\n```"


def task_prompt(body: str = BODY, task_id: str = "7") -> str:
    [task] = parse_tasks_md(f"# Tasks\n\n## Task {task_id}: Say hello\n\n{body}\n")
    return render_prompt(
        BUILTIN_TEMPLATE,
        task=task,
        worktree=Path("/wt/slot-1"),
        branch=f"tuiorch/{task_id}",
        agent_name="Claude",
        agent_email="noreply@anthropic.com",
    )


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


def post(server: ModelServer, path: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_plan_writes_then_commits_with_the_prompts_message() -> None:
    plan = plan_for_prompt(task_prompt())
    assert plan.task_id == "7" and not plan.fail
    assert plan.turns[0].write == ("notes/hello.txt", "hello world\n")
    assert plan.turns[1].shell.startswith("git add -A && git commit -q -m 'feat: Say hello' -m ")
    assert "Co-Authored-By: Claude <noreply@anthropic.com>" in plan.turns[1].shell
    assert commit_message(task_prompt()).splitlines()[0] == "feat: Say hello"


def test_plan_directives() -> None:
    assert plan_for_prompt(task_prompt("model: fail 529")).fail == 529
    assert plan_for_prompt(task_prompt("model: hang")).hang
    looping = plan_for_prompt(task_prompt("model: loop"))
    assert looping.turn(0).shell and looping.turn(99).shell
    assert not any(turn.shell for turn in plan_for_prompt(task_prompt(BODY + "\nmodel: no-commit")).turns)


def test_resolver_plan_keeps_both_sides() -> None:
    [task] = parse_tasks_md("# Tasks\n\n## Task 2: Two\n\nbody\n")
    prompt = render_resolve_prompt(
        RESOLVE_TEMPLATE,
        task=task,
        worktree="/wt/slot-2",
        branch="tuiorch/2",
        files=[("shared.txt", None, "from main\n", "from task\n")],
    )
    plan = plan_for_prompt(prompt)
    assert plan.task_id == "2"
    assert plan.turns[0].read == "shared.txt"
    assert plan.turns[1].write == ("shared.txt", "from main\nfrom task\n")
    assert "git commit -q --no-edit" in plan.turns[2].shell


def test_anthropic_stream_calls_the_offered_write_tool(server: ModelServer) -> None:
    tools = [{"name": "Write", "input_schema": {"properties": {"file_path": {}, "content": {}}}}]
    body = {
        "model": "m",
        "stream": True,
        "tools": tools,
        "messages": [{"role": "user", "content": task_prompt()}],
    }
    status, text = post(server, "/v1/messages?beta=true", body)
    events = sse_data(text)
    assert status == 200 and events[0]["type"] == "message_start"
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [block["type"] for block in starts] == ["text", "tool_use"] and starts[1]["name"] == "Write"
    partial = next(
        e["delta"]["partial_json"] for e in events if e.get("delta", {}).get("type") == "input_json_delta"
    )
    assert json.loads(partial) == {"file_path": "notes/hello.txt", "content": "hello world\n"}
    assert server.calls("anthropic", task_id="7")


def test_responses_stream_writes_through_the_shell_when_no_write_tool(server: ModelServer) -> None:
    tools = [
        {
            "type": "function",
            "name": "exec_command",
            "parameters": {"properties": {"cmd": {"type": "string"}}},
        }
    ]
    body = {
        "model": "m",
        "stream": True,
        "tools": tools,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": task_prompt()}]}],
    }
    status, text = post(server, "/v1/responses", body)
    events = sse_data(text)
    call = next(
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    )
    assert status == 200 and call["name"] == "exec_command"
    assert "> notes/hello.txt" in json.loads(call["arguments"])["cmd"]
    assert (
        events[-1]["type"] == "response.completed"
        and events[-1]["response"]["usage"]["input_tokens"] == INPUT_TOKENS
    )


def test_chat_counts_tool_results_to_find_its_turn(server: ModelServer) -> None:
    tools = [
        {"type": "function", "function": {"name": "bash", "parameters": {"properties": {"command": {}}}}}
    ]
    messages = [
        {"role": "user", "content": task_prompt()},
        {"role": "assistant", "content": "x"},
        {"role": "tool", "content": "ok"},
    ]
    status, text = post(
        server, "/v1/chat/completions", {"model": "m", "stream": True, "tools": tools, "messages": messages}
    )
    calls = [
        d
        for chunk in sse_data(text)
        for choice in chunk["choices"]
        for d in choice["delta"].get("tool_calls", [])
    ]
    assert status == 200 and "git commit" in json.loads(calls[0]["function"]["arguments"])["command"]
    assert text.rstrip().endswith("data: [DONE]")


def test_chat_without_tools_answers_with_whole_file_edits(server: ModelServer) -> None:
    status, text = post(
        server,
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": task_prompt()}]},
    )
    reply = json.loads(text)["choices"][0]["message"]["content"]
    assert status == 200 and "notes/hello.txt\n```\nhello world\n```" in reply


def test_gemini_function_call_and_errors(server: ModelServer) -> None:
    declarations = [
        {"name": "write_file", "parametersJsonSchema": {"properties": {"file_path": {}, "content": {}}}}
    ]
    body = {
        "contents": [{"role": "user", "parts": [{"text": task_prompt()}]}],
        "tools": [{"functionDeclarations": declarations}],
    }
    status, text = post(server, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body)
    [chunk] = sse_data(text)
    assert (
        status == 200
        and chunk["candidates"][0]["content"]["parts"][1]["functionCall"]["name"] == "write_file"
    )
    failing = {"contents": [{"role": "user", "parts": [{"text": task_prompt("model: fail 401")}]}]}
    status, text = post(server, "/v1beta/models/gemini-2.5-flash:generateContent", failing)
    assert status == 401 and json.loads(text)["error"]["status"] == "UNAUTHENTICATED"
    assert post(server, "/v1beta/models/gemini-2.5-flash:countTokens", {})[0] == 200


def test_override_replaces_a_tasks_plan(server: ModelServer) -> None:
    server.overrides["7"] = Plan(turns=(Turn(text="overridden"),), fail=500)
    status, text = post(server, "/v1/messages", {"messages": [{"role": "user", "content": task_prompt()}]})
    assert status == 500 and json.loads(text)["error"]["type"] == "api_error"


def test_aider_edits_use_the_fence_its_prompt_shows() -> None:
    """aider switches to a longer fence when a file in the chat holds ``` (a TASKS.md with write blocks)."""
    from tests.conformance.model_server import aider_fence, whole_file_reply

    prompt = "Example:\n\nshow_greeting.py\n````\nimport sys\n````\n"
    assert aider_fence(prompt) == ("````", "````")
    assert aider_fence("show_greeting.py\n<source>\nx\n</source>") == ("<source>", "</source>")
    assert "notes/hello.txt\n````\nhello world\n````" in whole_file_reply(
        plan_for_prompt(task_prompt()), ("````", "````")
    )
