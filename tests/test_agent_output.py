"""Agent output parsers, fed with recorded sample lines written from each CLI's documented event format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuiorch.agent_output import PARSERS, ParsedLine, Progress, make_output_parser, parse_progress
from tuiorch.config import PRESETS

DATA = Path(__file__).parent / "data" / "agent_output"


def feed_file(fmt: str, name: str) -> tuple[list[ParsedLine], object]:
    parser = make_output_parser(fmt)
    lines = (DATA / name).read_text().splitlines()
    results = [parser.feed(line) for line in lines]
    results.append(parser.flush())
    return results, parser


def shown(results: list[ParsedLine]) -> list[str]:
    """Every line the log pane would show, in order."""
    return [text for result in results if result.display for text in result.display.split("\n")]


def progress_values(results: list[ParsedLine]) -> list[object]:
    return [result.progress.value for result in results if result.progress is not None]


def statuses(results: list[ParsedLine]) -> list[str]:
    return [result.status for result in results if result.status]


# --- PROGRESS lines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PROGRESS: 3/5 writing tests", Progress(None, 3, 5, "writing tests")),
        ("PROGRESS: 60%", Progress(60.0, None, None, "")),
        ("  PROGRESS: 12.5% compiling ", Progress(12.5, None, None, "compiling")),
        ("PROGRESS:3/5", Progress(None, 3, 5, "")),
        ("`PROGRESS: 2/4` tests", Progress(None, 2, 4, "tests")),
        ("**PROGRESS: 50%**", Progress(50.0, None, None, "")),
        ("- PROGRESS: 1/2 half", Progress(None, 1, 2, "half")),
        ("progress: 1/3 lower case", Progress(None, 1, 3, "lower case")),
    ],
)
def test_parse_progress(line: str, expected: Progress) -> None:
    assert parse_progress(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "PROGRESS:",
        "PROGRESS: soon",
        "I made PROGRESS: 3/5 today",
        "PROGRESS: 3/0 nothing",
        "PROGRESS 3/5",
        "",
    ],
)
def test_not_progress(line: str) -> None:
    assert parse_progress(line) is None


def test_progress_fraction_is_clamped_for_a_bar() -> None:
    assert Progress(None, 3, 4, "").fraction == 0.75
    assert Progress(150.0, None, None, "").fraction == 1.0
    assert Progress(None, 7, 5, "").fraction == 1.0


# --- text -------------------------------------------------------------------------------------------------


def test_text_shows_every_line_and_reads_progress() -> None:
    results, parser = feed_file("text", "text.txt")
    lines = (DATA / "text.txt").read_text().splitlines()
    assert shown(results) == lines
    assert progress_values(results) == [(2, 5), 40.0, (3, 5), (4, 5)]
    assert not any(result.is_error for result in results) and parser.error is None


# --- claude -----------------------------------------------------------------------------------------------


def test_claude_stream_success() -> None:
    results, parser = feed_file("claude-stream", "claude-stream.jsonl")
    assert shown(results) == [
        "session started (claude-sonnet-4-5)",
        "I'll read the code first.",
        "PROGRESS: 1/4 reading code",
        "→ Read /wt/slot-1/src/app.py",
        "→ Edit /wt/slot-1/src/app.py",
        "✗ Edit failed: <tool_use_error>String to replace not found in file.",
        "Fixing the edit.",
        "`PROGRESS: 60%` editing",
        "→ Bash pytest -q",
        "[warn] a plain line some wrapper printed",
        "Committed: feat: greet properly.",
        "PROGRESS: 4/4 done",
        "Committed: feat: greet properly.",
        "done (6 turns, $0.02, 12s)",
    ]
    assert progress_values(results) == [(1, 4), 60.0, (4, 4)]
    assert "running tool Read" in statuses(results) and "running tool Bash" in statuses(results)
    assert results[-2].status == "done" and not results[-2].is_error
    assert not any(result.is_error for result in results) and parser.error is None


def test_claude_stream_error_result_and_malformed_lines() -> None:
    results, parser = feed_file("claude-stream", "claude-stream-error.jsonl")
    # A truncated JSON line and a JSON array are shown as they are; odd shapes never raise.
    assert results[1].display and results[1].display.startswith('{"type":"assistant"')
    assert results[5].display == "[1, 2, 3]"
    final = results[-2]
    assert final.is_error and final.status and final.status.startswith("failed: error_max_turns")
    assert final.display == "agent failed: error_max_turns (50 turns, $1.25, 600s)"
    assert parser.error == "error_max_turns"
    assert sum(result.is_error for result in results) == 1


def test_claude_is_error_with_success_subtype_counts_as_failure() -> None:
    """The CLI may exit 0 with is_error true on API errors: the parser must still say it failed."""
    parser = make_output_parser("claude-stream")
    event = {"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 529 Overloaded"}
    parsed = parser.feed(json.dumps(event))
    assert parsed.is_error and parsed.display == "agent failed: API Error: 529 Overloaded"
    assert parser.error == "API Error: 529 Overloaded"


# --- codex ------------------------------------------------------------------------------------------------


def test_codex_json_success() -> None:
    results, parser = feed_file("codex-json", "codex-json.jsonl")
    assert shown(results) == [
        "session started",
        "(thinking) **Scanning the repository**",
        "$ bash -lc ls",
        "$ bash -lc 'pytest -q'  [exit 1]",
        "edited: update src/app.py, add tests/test_app.py",
        "→ docs.search  [failed]",
        "Implemented the greeting and added a test.",
        "PROGRESS: 100% committed",
        "done (24763 in / 122 out tokens)",
    ]
    assert progress_values(results) == [(0, 3), (2, 3), 100.0]
    assert "running bash -lc ls" in statuses(results) and "editing files" in statuses(results)
    assert statuses(results)[-1] == "done"
    assert not any(result.is_error for result in results) and parser.error is None


def test_codex_turn_failed_is_an_error() -> None:
    results, parser = feed_file("codex-json", "codex-json-error.jsonl")
    assert "error: command timed out" in shown(results)  # a failed item is shown, not fatal
    assert "Reading prompt from stdin..." in shown(results)
    assert results[3].display == '{"type":"item.completed","item":'
    errors = [result for result in results if result.is_error]
    # A stream error is retried by codex: shown, kept as the last warning, but only turn.failed ends the run.
    assert "error: stream disconnected before completion" in shown(results)
    assert [result.display for result in errors] == ["agent failed: You've hit your usage limit."]
    assert parser.error == "You've hit your usage limit."


# --- gemini -----------------------------------------------------------------------------------------------


def test_gemini_stream_success_joins_deltas_into_lines() -> None:
    results, parser = feed_file("gemini-stream", "gemini-stream.jsonl")
    assert shown(results) == [
        "session started (gemini-2.5-pro)",
        "I'll look at the code.",
        "PROGRESS: 1/3 reading code",
        "→ read_file /wt/slot-2/src/app.py",
        "→ replace /wt/slot-2/src/app.py",
        "✗ replace failed: Failed to edit, 0 occurrences found",
        "warning: Loop detected, continuing",
        "Done: the greeting is friendlier",
        "done (4200 tokens, 2 tool calls, 5s)",
    ]
    # The prompt echo (role user) is hidden.
    assert not any("Your task" in text for text in shown(results))
    assert progress_values(results) == [(1, 3)]
    assert "running tool replace" in statuses(results) and statuses(results)[-1] == "done"
    assert not any(result.is_error for result in results) and parser.error is None


def test_gemini_error_result() -> None:
    results, parser = feed_file("gemini-stream", "gemini-stream-error.jsonl")
    assert "Working on it" in shown(results)  # held delta text flushed by the next event
    assert "→ run_shell_command" in shown(results)
    assert "✗ tool failed: plain string error" in shown(results)
    final = results[-2]
    assert final.is_error and final.display == "agent failed: Reached max session turns"
    assert parser.error == "Reached max session turns"


def test_gemini_flush_shows_text_held_at_end_of_stream() -> None:
    parser = make_output_parser("gemini-stream")
    held = parser.feed('{"type":"message","role":"assistant","content":"last words","delta":true}')
    assert held.display is None
    assert parser.flush().display == "last words"
    assert parser.flush().display is None


# --- opencode ---------------------------------------------------------------------------------------------


def test_opencode_json_success() -> None:
    results, parser = feed_file("opencode-json", "opencode-json.jsonl")
    assert shown(results) == [
        "Reading the code.",
        "PROGRESS: 2/5 reading",
        "→ bash ls src",
        "✗ edit failed: oldString not found in content",
        "→ edit /wt/slot-3/src/app.py",
        "done; permissions refused: external_directory",
    ]
    assert progress_values(results) == [(2, 5)]
    assert statuses(results)[-1] == "done"
    assert not any(result.is_error for result in results) and parser.error is None


def test_opencode_session_error() -> None:
    results, parser = feed_file("opencode-json", "opencode-json-error.jsonl")
    assert "→ read" in shown(results)
    assert '{"type":"text","timestamp":' in shown(results)
    assert results[3].is_error and results[3].display == "agent failed: Invalid API key"
    assert parser.error == "Invalid API key"


# --- all formats ------------------------------------------------------------------------------------------


def test_every_preset_output_has_a_parser() -> None:
    assert {preset.output for preset in PRESETS.values()} <= set(PARSERS)


def test_unknown_format_falls_back_to_text() -> None:
    assert make_output_parser("nope").feed("hello").display == "hello"


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_plain_lines_are_shown_as_is_in_every_format(fmt: str) -> None:
    parsed = make_output_parser(fmt).feed("Traceback (most recent call last):")
    assert parsed.display == "Traceback (most recent call last):" and not parsed.is_error
    assert make_output_parser(fmt).feed("PROGRESS: 2/3 x").progress == Progress(None, 2, 3, "x")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
event_types = st.sampled_from(
    ["system", "assistant", "user", "result", "thread.started", "turn.completed", "turn.failed", "error",
     "item.started", "item.completed", "init", "message", "tool_use", "tool_result", "text", "reasoning",
     "step_finish", "done", "x"]
)  # fmt: skip
events = st.fixed_dictionaries(
    {"type": event_types},
    optional={
        "message": json_values,
        "item": st.fixed_dictionaries(
            {"type": st.text(max_size=15) | st.sampled_from(["todo_list", "file_change"])}
        )
        | json_values,
        "part": json_values,
        "content": json_values,
        "error": json_values,
        "is_error": json_values,
        "delta": json_values,
        "role": st.sampled_from(["assistant", "user"]) | json_values,
        "stats": json_values,
        "usage": json_values,
        "rejected": json_values,
        "parameters": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(sorted(PARSERS)), event=events, cut=st.integers(min_value=0, max_value=200))
def test_odd_or_malformed_json_never_raises(fmt: str, event: dict[str, object], cut: int) -> None:
    parser = make_output_parser(fmt)
    line = json.dumps(event)
    for text in (line, line[:cut]):
        parsed = parser.feed(text)
        assert parsed.display is None or isinstance(parsed.display, str)
    parser.flush()


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_deeply_nested_json_is_shown_not_raised(fmt: str) -> None:
    line = '{"a":' * 100_000 + "1" + "}" * 100_000
    assert make_output_parser(fmt).feed(line).display == line
