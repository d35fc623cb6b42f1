"""What an agent says reaches the user: its activity, its failure in its own words, its progress text, its
tokens and cost, in events, the run summary and the report. Real runs of the demo agent (a real program)
made to print what the real CLIs print, in real repositories."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.test_headless import of, run
from tuiorch.agent import AgentExit
from tuiorch.agent_output import make_output_parser
from tuiorch.config import PRESETS
from tuiorch.verdict import failure_reason


def custom(output: str, *, stdin: bool = False, retries: int = 0) -> str:
    argument = "-" if stdin else "{prompt_file}"
    command = json.dumps([sys.executable, "-m", "tuiorch.demo_agent", argument])
    return f'[agent]\npreset = "custom"\ncommand = {command}\noutput = "{output}"\nretries = {retries}\ntimeout = "60s"\nstuck_after = "0"\n'


def project(repo: Path, body: str, config: str) -> None:
    (repo / "tuiorch.toml").write_text("workers = 1\n\n" + config)
    (repo / "TASKS.md").write_text("## Task 1: Say hello\n\n" + textwrap.dedent(body))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "tasks"], cwd=repo, check=True)


def line(event: dict) -> str:
    return "say: " + json.dumps(event)


WRITE = "```write hello.txt\nhello\n```\n"
API_RETRY = {"type": "system", "subtype": "api_retry", "attempt": 3, "max_retries": 10, "retry_delay_ms": 2000,
             "error_status": 529, "error": "overloaded"}
SYNTHETIC = {"type": "assistant", "message": {"id": "m1", "model": "<synthetic>", "role": "assistant", "content": [
    {"type": "text", "text": 'API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}'}]}}
FAILED_RESULT = {"type": "result", "subtype": "success", "is_error": True, "api_error_status": 529,
                 "result": 'API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}'}
GOOD_RESULT = {"type": "result", "subtype": "success", "is_error": False, "result": "done", "num_turns": 3,
               "total_cost_usd": 0.0421, "usage": {"input_tokens": 1000, "cache_read_input_tokens": 200,
                                                   "output_tokens": 300}}


def test_an_api_failure_is_told_in_the_agents_words_live_and_in_the_retry_prompt(repo: Path) -> None:
    body = "\n".join([WRITE, line(API_RETRY), line(SYNTHETIC), line(FAILED_RESULT), "exit: 1", ""])
    project(repo, body, custom("claude-stream", retries=1))
    code, events = run(repo)
    assert code == 1
    activities = [e["activity"] for e in of(events, "task_activity", "1")]
    assert "retrying API 3/10 after 529" in activities
    failed = of(events, "task_failed", "1")
    assert len(failed) == 1
    assert failed[0]["reason"].startswith('API Error: 529 {"type":"error"')
    assert failed[0]["reason"].endswith("(exit 1)")
    # The second attempt's prompt says why the first one failed.
    prompt = (repo / ".git" / "tuiorch" / "prompts" / "1.md").read_text()
    assert "A previous attempt failed (API Error: 529" in prompt
    assert "()" not in prompt
    summary = of(events, "run_finished")[0]
    assert summary["tasks"][0]["reason"] == failed[0]["reason"]


def test_a_model_failure_on_exit_0_fails_the_task_and_merges_nothing(repo: Path) -> None:
    body = WRITE + "say: litellm.AuthenticationError: AuthenticationError: OpenAIException - bad key\nsay: \n"
    project(repo, body, custom("aider-text"))
    main_before = subprocess.run(["git", "rev-parse", "main"], cwd=repo, capture_output=True, text=True).stdout
    code, events = run(repo)
    assert code == 1
    assert of(events, "merged") == [] and of(events, "task_empty") == []
    [failed] = of(events, "task_failed", "1")
    assert failed["reason"] == "litellm.AuthenticationError: AuthenticationError: OpenAIException - bad key (exit 0)"
    assert subprocess.run(["git", "rev-parse", "main"], cwd=repo, capture_output=True, text=True).stdout == main_before


def test_tokens_and_cost_reach_run_finished_and_the_report(repo: Path) -> None:
    project(repo, WRITE + line(GOOD_RESULT) + "\n", custom("claude-stream"))
    code, events = run(repo)
    assert code == 0
    summary = of(events, "run_finished")[0]
    assert summary["tasks"][0]["usage"] == {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0421}
    assert summary["usage"] == {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0421}
    report = subprocess.run(
        [sys.executable, "-m", "tuiorch", "report"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert "[1.5k tokens · $0.042]" in report and "agents used 1.5k tokens · $0.042" in report
    as_json = json.loads(
        subprocess.run([sys.executable, "-m", "tuiorch", "report", "--json"], cwd=repo, capture_output=True,
                       text=True, check=True).stdout
    )
    assert as_json["usage"]["cost_usd"] == 0.0421


def test_progress_words_and_stderr_reach_the_user_apart(repo: Path) -> None:
    body = WRITE + "warn: [STARTUP] Cannot measure phase 'cleanup_ops'\nwarn: the agent's last words\nexit: 3\n"
    project(repo, body, custom("text"))
    code, events = run(repo)
    assert code == 1
    texts = [e.get("text") for e in of(events, "task_progress", "1")]
    assert "read task" in texts and "write hello.txt" in texts
    [failed] = of(events, "task_failed", "1")
    assert failed["reason"] == "the agent's last words (exit 3)"
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    assert "[stderr] [STARTUP] Cannot measure phase 'cleanup_ops'\n" in log


def test_a_300_kb_prompt_reaches_an_agent_on_stdin_and_through_a_file(repo: Path, tmp_path: Path) -> None:
    padding = "".join(f"background line {n}: " + "words " * 10 + "\n" for n in range(5000))
    assert len(padding) > 300_000
    project(repo, WRITE + "\n" + padding, custom("text", stdin=True))
    code, events = run(repo)
    assert code == 0, of(events, "task_failed")
    assert (repo / "hello.txt").read_text() == "hello\n"
    assert (repo / ".git" / "tuiorch" / "prompts" / "1.md").stat().st_size > 300_000


def test_a_prompt_too_long_for_one_argument_is_a_clear_failure(repo: Path) -> None:
    command = json.dumps([sys.executable, "-c", "print('never')", "{prompt}"])
    project(repo, WRITE + "x" * 200_000 + "\n", f'[agent]\npreset = "custom"\ncommand = {command}\nretries = 0\n')
    code, events = run(repo)
    [failed] = of(events, "task_failed", "1")
    assert "too long for one command-line argument" in failed["reason"] and "{prompt_file}" in failed["reason"]


# --- failure reasons (pure) ---------------------------------------------------------------------------------


def test_gemini_exit_codes_are_explained() -> None:
    parser = make_output_parser("gemini-stream")
    gemini = PRESETS["gemini"]
    untrusted = ["Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`"]
    reason = failure_reason(AgentExit(code=55), parser, untrusted, gemini)
    assert reason.startswith("folder not trusted (Gemini CLI exit 55): Gemini CLI is not running in a trusted")
    assert failure_reason(AgentExit(code=144), parser, [], gemini) == (
        "the model API answered HTTP 400 (exit 144: HTTP 400, as this CLI exits with the HTTP status & 0xFF)"
    )
    parser.error = '[API Error: {"error":{"code":401,"message":"invalid api key"}}]'
    assert failure_reason(AgentExit(code=145), parser, [], gemini) == (
        '[API Error: {"error":{"code":401,"message":"invalid api key"}}] '
        "(exit 145: HTTP 401, as this CLI exits with the HTTP status & 0xFF)"
    )
    assert "HTTP 500" in failure_reason(AgentExit(code=244), parser, [], gemini)
    # Another CLI's exit 144 is only a number.
    assert failure_reason(AgentExit(code=144), make_output_parser("text"), [], PRESETS["custom"]) == "agent exited 144"


def test_a_turn_limit_is_told_in_claudes_words() -> None:
    parser = make_output_parser("claude-stream")
    parser.feed(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True,
                            "errors": ["Reached maximum number of turns (50)"], "terminal_reason": "max_turns"}))
    assert failure_reason(AgentExit(code=1), parser, [], PRESETS["claude"]) == (
        "Reached maximum number of turns (50) (exit 1)"
    )
