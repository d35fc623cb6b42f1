"""Agent output parsers fed with output captured from the real CLIs (tests/data/agent_output/real/).

Each file is what the pinned CLI printed on stdout (and `.stderr.txt`, its stderr) when run with tuiorch's
preset argv against the scripted model server: a task that writes and commits, an API error, a turn limit.
The assertions are what the user must see: the tool running, the progress, the failure in the CLI's words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuiorch.agent_output import ParsedLine, make_output_parser

REAL = Path(__file__).parent / "data" / "agent_output" / "real"
FORMATS = {
    "claude": "claude-stream",
    "codex": "codex-json",
    "gemini": "gemini-stream",
    "opencode": "opencode-json",
    "aider": "aider-text",
}


def feed(name: str) -> tuple[list[ParsedLine], object]:
    fmt = FORMATS.get(name.split("-")[0], "text")
    parser = make_output_parser(fmt)
    results = [parser.feed(line) for line in (REAL / name).read_text().splitlines()]
    results.append(parser.flush())
    return results, parser


def statuses(results: list[ParsedLine]) -> list[str]:
    return [result.status for result in results if result.status]


def progress(results: list[ParsedLine]) -> list[object]:
    return [result.progress.value for result in results if result.progress is not None]


@pytest.mark.parametrize(
    ("name", "tools"),
    [
        ("claude-success.jsonl", ["Write", "Bash"]),
        ("gemini-success.jsonl", ["write_file", "run_shell_command"]),
        ("opencode-success.jsonl", ["write", "bash"]),
        ("codex-success.jsonl", ["printf"]),
    ],
)
def test_success_shows_each_tool_and_the_progress(name: str, tools: list[str]) -> None:
    results, parser = feed(name)
    assert parser.error is None and not any(result.is_error for result in results)
    shown = statuses(results)
    for tool in tools:
        assert any(tool in status for status in shown), (tool, shown)
    assert progress(results) == [(1, 2), (2, 2)]


def test_claude_thinking_shows_as_thinking() -> None:
    results, _ = feed("claude-success.jsonl")
    assert "thinking" in statuses(results)


def test_aider_success_reads_its_progress_line() -> None:
    results, parser = feed("aider-success.txt")
    assert parser.error is None and progress(results) == [(1, 2)]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("claude-401.jsonl", "API Error: 401"),
        ("claude-529.jsonl", "API Error: 529 overloaded"),
        ("codex-401.jsonl", "401 Unauthorized"),
        ("gemini-401.jsonl", "invalid api key"),
        ("opencode-401.jsonl", "invalid api key"),
        ("gemini-max-turns.jsonl", "Reached max session turns"),
    ],
)
def test_failure_reason_in_the_clis_own_words(name: str, words: str) -> None:
    results, parser = feed(name)
    assert parser.error is not None and words in parser.error
    assert any(result.is_error for result in results)


def test_claude_max_turns_reason_names_the_limit() -> None:
    _, parser = feed("claude-max-turns.jsonl")
    assert parser.error is not None and "maximum number of turns (50)" in parser.error


def test_claude_api_error_reason_has_no_subtype_prefix() -> None:
    _, parser = feed("claude-529.jsonl")
    assert parser.error is not None and parser.error.startswith("API Error: 529")


@pytest.mark.parametrize("name", ["aider-401.txt", "aider-500.txt"])
def test_aider_failed_model_call_is_an_error(name: str) -> None:
    _, parser = feed(name)
    assert parser.error is not None and "litellm." in parser.error


def test_opencode_step_limit_ends_without_an_error_event() -> None:
    """opencode's step limit asks the model for a text-only answer and exits 0: no error in the stream.

    tuiorch learns of it only from the missing work (the task ends empty)."""
    results, parser = feed("opencode-max-steps.jsonl")
    assert parser.error is None and not any(result.is_error for result in results)


def test_aider_reason_joins_its_wrapped_lines() -> None:
    _, parser = feed("aider-401.txt")
    assert parser.error == (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - invalid api key "
        "The API provider is not able to authenticate you. Check your API key."
    )


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        ("claude-success.jsonl", (3600, 240, True)),
        ("codex-success.jsonl", (3600, 240, False)),
        ("gemini-success.jsonl", (3600, 240, False)),
        ("opencode-success.jsonl", (3600, 240, True)),
        ("aider-success.txt", (1200, 80, True)),
    ],
)
def test_tokens_and_cost_as_each_cli_reports_them(name: str, usage: tuple[int, int, bool]) -> None:
    _, parser = feed(name)
    tokens_in, tokens_out, priced = usage
    assert parser.usage is not None
    assert (parser.usage.input_tokens, parser.usage.output_tokens) == (tokens_in, tokens_out)
    assert (parser.usage.cost_usd is not None) == priced


def test_claude_api_retries_show_as_they_happen() -> None:
    results, _ = feed("claude-529.jsonl")
    assert "retrying API 1/1 after 529" in statuses(results)


def test_stderr_lines_are_shown_never_read_as_the_stream() -> None:
    parser = make_output_parser("gemini-stream")
    for line in (REAL / "gemini-401.stderr.txt").read_text().splitlines():
        parsed = parser.feed_stderr(line)
        assert not parsed.is_error and parsed.display == (line or None)
    assert parser.error is None
