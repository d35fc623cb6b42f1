"""Agent output parsers fed with output captured from the real CLIs (tests/data/agent_output/real/).

Each file is what the pinned CLI printed on stdout (and `.stderr.txt`, its stderr) when run as tuiorch's
preset runs it, against the scripted model server (`python -m tests.conformance.capture`): a task that
writes and commits, API errors, turn limits. The assertions are what the user must see: the tool running,
the progress with its words, the tokens and cost, the failure in the CLI's own words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuiorch.agent_output import OutputParser, ParsedLine, Usage, make_output_parser
from tuiorch.config import PRESETS

REAL = Path(__file__).parent / "data" / "agent_output" / "real"

# The scripted model reports 1200 input and 80 output tokens per answer.
IN, OUT = 1200, 80


def feed(name: str) -> tuple[list[ParsedLine], OutputParser]:
    """Stdout line by line, then the captured stderr through the parser's stderr side."""
    parser = make_output_parser(PRESETS[name.split("-")[0]].output)
    results = [parser.feed(line) for line in (REAL / name).read_text().splitlines()]
    stderr = REAL / (name.rsplit(".", 1)[0] + ".stderr.txt")
    if stderr.exists():
        results += [parser.feed_stderr(line) for line in stderr.read_text().splitlines()]
    results.append(parser.flush())
    return results, parser


def statuses(results: list[ParsedLine]) -> list[str]:
    return [result.status for result in results if result.status]


def progress(results: list[ParsedLine]) -> list[tuple[int | None, int | None, str]]:
    return [(r.progress.done, r.progress.total, r.progress.text) for r in results if r.progress is not None]


@pytest.mark.parametrize(
    ("name", "tools", "answers", "steps"),
    [
        (
            "claude-success.jsonl",
            ["running tool Write", "running tool Bash"],
            3,
            [(1, 2, "writing hello.txt"), (2, 2, "committing")],
        ),
        (
            "gemini-success.jsonl",
            ["running tool write_file", "running tool run_shell_command"],
            3,
            [(1, 2, "writing hello.txt"), (2, 2, "committing")],
        ),
        (
            "opencode-success.jsonl",
            ["ran tool write", "ran tool bash"],
            3,
            [(1, 2, "writing hello.txt"), (2, 2, "committing")],
        ),
        # codex is not asked to commit (its sandbox keeps .git read-only): one write, through its shell.
        ("codex-success.jsonl", ["printf"], 2, [(1, 1, "writing hello.txt")]),
        ("aider-success.txt", ["edited hello.txt"], 1, [(1, 1, "writing hello.txt")]),
    ],
)
def test_success_shows_each_tool_the_progress_words_and_the_tokens(
    name: str, tools: list[str], answers: int, steps: list[tuple[int, int, str]]
) -> None:
    results, parser = feed(name)
    assert parser.error is None and not any(result.is_error for result in results)
    shown = statuses(results)
    for tool in tools:
        assert any(tool in status for status in shown), (tool, shown)
    assert progress(results) == steps
    assert parser.usage is not None
    assert (parser.usage.input_tokens, parser.usage.output_tokens) == (answers * IN, answers * OUT)


@pytest.mark.parametrize(
    ("name", "cost"),
    [
        ("claude-success.jsonl", 0.0144),
        ("aider-success.txt", 0.0048),
        ("opencode-success.jsonl", 0.0),  # priced, at 0 for a model it has no price for
        ("codex-success.jsonl", None),
        ("gemini-success.jsonl", None),
    ],
)
def test_cost_where_the_cli_prices_its_calls(name: str, cost: float | None) -> None:
    _, parser = feed(name)
    usage = parser.usage or Usage()
    assert usage.cost_usd == (pytest.approx(cost) if cost is not None else None)


def test_claude_thinking_shows_as_thinking() -> None:
    results, _ = feed("claude-success.jsonl")
    assert "thinking" in statuses(results)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("claude-401.jsonl", "API Error: 401"),
        ("claude-529.jsonl", "API Error: 529 overloaded"),
        ("claude-max-turns.jsonl", "Reached maximum number of turns (50)"),
        ("codex-401.jsonl", "401 Unauthorized"),
        ("codex-500.jsonl", "experiencing high demand"),
        ("gemini-401.jsonl", "invalid api key"),
        ("gemini-529.jsonl", '"code":529,"message":"overloaded"'),
        ("gemini-max-turns.jsonl", "Reached max session turns"),
        ("opencode-401.jsonl", "invalid api key (HTTP 401)"),
        ("aider-401.txt", "litellm.AuthenticationError"),
        ("aider-500.txt", "litellm.InternalServerError"),
    ],
)
def test_failure_reason_in_the_clis_own_words(name: str, words: str) -> None:
    results, parser = feed(name)
    assert parser.error is not None and words in parser.error, parser.error
    assert any(result.is_error for result in results) or name.startswith("aider")


def test_claude_api_retry_is_a_live_status() -> None:
    results, _ = feed("claude-529.jsonl")
    assert "retrying API 1/1 after 529" in statuses(results)


def test_gemini_api_retries_are_a_live_status_without_their_stack_traces() -> None:
    """Gemini says nothing on stdout while it retries a failing model call (minutes, for a 529); its stderr
    says "Attempt N failed with status 529. Retrying…" and prints the error's stack. The pane shows the
    retries as they happen, and the stacks stay in the log."""
    results, parser = feed("gemini-529.jsonl")
    retries = [status for status in statuses(results) if status.startswith("retrying API")]
    assert retries[:2] == ["retrying API after 529 (attempt 1 failed)", "retrying API after 529 (attempt 2 failed)"]
    shown = [line for result in results if result.display for line in result.display.splitlines()]
    assert not [line for line in shown if line.lstrip().startswith("at ")], shown
    assert parser.error is not None and "529" in parser.error


def test_aider_retries_show_while_it_retries() -> None:
    results, _ = feed("aider-500.txt")
    assert any(status.startswith("retrying the model call") for status in statuses(results))


def test_gemini_stderr_warnings_are_not_errors() -> None:
    """gemini writes startup warnings on stderr mid-run; they must not fail or split anything."""
    results, parser = feed("gemini-success.jsonl")
    assert parser.error is None and not any(result.is_error for result in results)


def test_opencode_step_limit_ends_without_an_error_event() -> None:
    """opencode's step limit asks the model for a text-only answer and exits 0: no error in the stream.

    tuiorch learns of it only from the missing work (the task ends empty)."""
    results, parser = feed("opencode-max-turns.jsonl")
    assert parser.error is None and not any(result.is_error for result in results)


def test_claude_api_error_reason_has_no_subtype_prefix() -> None:
    _, parser = feed("claude-529.jsonl")
    assert parser.error is not None and parser.error.startswith("API Error: 529")


def test_aider_reason_joins_its_wrapped_lines() -> None:
    _, parser = feed("aider-401.txt")
    assert parser.error == (
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - invalid api key "
        "The API provider is not able to authenticate you. Check your API key."
    )


def test_stderr_lines_are_shown_never_read_as_the_stream() -> None:
    """Shown as they are, except a JavaScript stack trace's frames (the log keeps those)."""
    parser = make_output_parser("gemini-stream")
    lines = (REAL / "gemini-401.stderr.txt").read_text().splitlines()
    shown = []
    for line in lines:
        parsed = parser.feed_stderr(line)
        assert not parsed.is_error
        shown += [parsed.display] if parsed.display else []
    assert parser.error is None
    assert shown == lines[:5]  # the warnings, then the error's own words; its stack is left to the log
    assert "_ApiError" in shown[-1] and "invalid api key" in shown[-1]


@pytest.mark.parametrize(
    "name",
    ["claude-success.jsonl", "gemini-success.jsonl", "opencode-success.jsonl", "codex-success.jsonl", "aider-success.txt"],
)
def test_the_agents_closing_words_show_once(name: str) -> None:
    """The pane shows what the agent said last once, not again when the CLI's summary event repeats it.
    (stdout only: a CLI may print the same warning twice on stderr itself.)"""
    parser = make_output_parser(PRESETS[name.split("-")[0]].output)
    results = [parser.feed(line) for line in (REAL / name).read_text().splitlines()] + [parser.flush()]
    shown = [line for result in results if result.display for line in result.display.splitlines() if line.strip()]
    repeated = [line for before, line in zip(shown, shown[1:], strict=False) if line == before]
    assert not repeated, shown


def test_gemini_keeps_the_tools_name_while_the_model_thinks_after_it() -> None:
    # Its tools finish in milliseconds: a status of the tool alone would be gone before the pane shows it.
    results, _ = feed("gemini-success.jsonl")
    shown = statuses(results)
    ran = next(s for s in shown if s.startswith("running tool "))
    assert f"thinking (after {ran.removeprefix('running tool ')})" in shown


def test_opencode_keeps_the_tools_name_while_the_model_thinks_after_it() -> None:
    # opencode reports a tool once it has finished and ends the step milliseconds later: the status after
    # the step must still name the tool, until the model's next step starts.
    results, _ = feed("opencode-success.jsonl")
    shown = statuses(results)
    ran = [s.removeprefix("ran tool ") for s in shown if s.startswith("ran tool ")]
    assert ran
    after = [s for s in shown if s.startswith("thinking (after ")]
    assert after and after[0] == f"thinking (after {ran[0]})"
    assert shown[-1] == "done"
