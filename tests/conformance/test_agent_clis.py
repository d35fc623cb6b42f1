"""Conformance: every preset with its real CLI, driven through tuiorch, against the scripted model server.

Each test makes a real repository with a TASKS.md and a tuiorch.toml naming the preset, points the CLI at the
model server (tests/conformance/cli_env.py) and runs `tuiorch run --headless --json` (or the TUI under Pilot),
then checks what a user would notice: files on main through merge commits, the agent's own commits, failures
in the CLI's own words, nothing merged from a failed model call, live status and cost on screen.

The CLIs come from scripts/install-agent-clis.sh. A missing CLI skips its tests, naming it; in CI it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conformance.cli_env import PRESET_CLIS, cli_env, cli_path
from tests.conformance.model_server import MODEL_TRAILER, ModelServer
from tests.conftest import git, make_repo
from tuiorch.config import PRESETS as TUIORCH_PRESETS
from tuiorch.confine.bwrap import bubblewrap_problem
from tuiorch.confine.sandbox import confined_preset
from tuiorch.prompt import RESOLVE_MARKER

PRESETS = ("claude", "codex", "opencode", "gemini", "aider")

#: Presets whose CLI makes the task's commit itself: tuiorch commits what the others leave. Unconfined,
#: codex's own sandbox keeps .git read-only; confined (where bubblewrap works: `confine = "auto"`) it runs
#: without it and commits. aider runs with --no-auto-commits either way.
COMMITS_ITSELF = {
    name
    for name in PRESETS
    if (confined_preset(TUIORCH_PRESETS[name]) if bubblewrap_problem() is None else TUIORCH_PRESETS[name]).commits
}

#: The HTTP status each preset's API-error case answers with, and the words of it the user must see.
#: (aider retries a 500 for over a minute and opencode a 500 for half a minute: 401 keeps them quick.)
API_ERRORS = {
    "claude": (529, "API Error: 529"),
    "codex": (500, "experiencing high demand"),  # codex's own words for an HTTP 500
    "opencode": (401, "invalid api key"),
    "gemini": (401, "invalid api key"),
    "aider": (401, "AuthenticationError"),
}

#: The CLI's own turn limit: the limit tuiorch's preset or the CLI's config sets, and what the CLI says.
TURN_LIMITS = {
    "claude": (None, "maximum number of turns"),  # the preset's --max-turns 50
    "gemini": (5, "max session turns"),  # settings.json model.maxSessionTurns
    "opencode": (5, ""),  # agent steps: the model is asked for a text answer, the run ends without an error
}

# A case a preset fails today, and why: (case, preset) -> reason, marked xfail(strict=False). Empty:
# every preset passes every case it has.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def presets(case: str, only: Iterator[str] | tuple[str, ...] = PRESETS) -> list[Any]:
    """The presets as parameters, each marked xfail where KNOWN_FAILURES says this case fails today."""
    params = []
    for name in only:
        reason = KNOWN_FAILURES.get((case, name))
        marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def need_cli(preset: str) -> None:
    cli = PRESET_CLIS[preset]
    if cli_path(cli) is None:
        message = f"{cli} is not installed: run scripts/install-agent-clis.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# -- projects and runs ---------------------------------------------------------------------------------------


def write_block(path: str, text: str) -> str:
    return f"```write {path}\n{text}\n```"


def tasks_md(*tasks: tuple[str, str, str]) -> str:
    """(id, title, body) each: a TASKS.md."""
    return "# Tasks\n\n" + "".join(f"## Task {tid}: {title}\n\n{body}\n\n" for tid, title, body in tasks)


def make_project(
    root: Path,
    preset: str,
    tasks: str,
    *,
    workers: int = 2,
    retries: int = 0,
    timeout: str = "150s",
    merge: str = "",
) -> Path:
    repo = make_repo(root / "repo")
    (repo / "tuiorch.toml").write_text(
        f'workers = {workers}\n\n[agent]\npreset = "{preset}"\ntimeout = "{timeout}"\nstuck_after = "0"\n'
        f"retries = {retries}\n\n[merge]\n{merge}\n"
    )
    (repo / "TASKS.md").write_text(tasks)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add tasks")
    return repo


@dataclass
class Run:
    code: int
    events: list[dict[str, Any]]
    stderr: str
    seconds: float

    def of(self, name: str, task: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name and (task is None or e.get("task") == task)]

    def reason(self, task: str) -> str:
        failed = self.of("task_failed", task)
        return failed[-1].get("reason", "") if failed else ""

    def task_seconds(self, task: str) -> float | None:
        """From the task's first start to its merge, as the events' clocks say."""
        started, merged = self.of("task_started", task), self.of("merged", task)
        if not started or not merged:
            return None
        return _stamp(merged[-1]) - _stamp(started[0])


def _stamp(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["time"]).timestamp()


def kill_leftovers(root: Path) -> list[str]:
    """End every process still running in `root` (an agent a crash left behind); their command lines."""
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cwd = proc.info["cwd"] or ""
            if cwd.startswith(str(root)) and proc.pid != os.getpid():
                found.append(" ".join(proc.info["cmdline"] or []))
                proc.kill()
    return found


def run_tuiorch(repo: Path, env: dict[str, str], *, timeout: float = 400) -> Run:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo,
        env={**env, "PWD": str(repo)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"tuiorch did not finish in {timeout}s:\n{out[-3000:]}\n{err[-3000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return Run(proc.returncode, events, err, time.monotonic() - started)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


@pytest.fixture
def env_for(server: ModelServer, tmp_path: Path) -> Iterator[Callable[..., dict[str, str]]]:
    """The environment for a preset's CLI in this test (its own scratch HOME); leftovers killed at the end."""

    def make(preset: str, **options: Any) -> dict[str, str]:
        need_cli(preset)
        return cli_env(preset, server.url, tmp_path / "home", **options)

    yield make
    left = kill_leftovers(tmp_path)
    assert not left, f"processes left running after the test: {left}"


def main_subjects(repo: Path) -> list[str]:
    return git(repo, "log", "--first-parent", "--format=%s", "main").splitlines()


def report_times(request: pytest.FixtureRequest, preset: str, run: Run, tasks: list[str]) -> None:
    times = {tid: run.task_seconds(tid) for tid in tasks}
    request.node.user_properties.append(("task_seconds", times))
    shown = ", ".join(f"{tid}: {'-' if s is None else f'{s:.1f}s'}" for tid, s in times.items())
    print(f"\n[{preset}] run {run.seconds:.1f}s; per task {shown}")


# -- the cases -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", presets("write_commit"))
def test_tasks_write_and_commit_and_merge_into_main(
    preset: str,
    tmp_path: Path,
    server: ModelServer,
    env_for: Callable[..., dict[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    """Four tasks on two workers, one model server: each file reaches main through a merge commit."""
    env = env_for(preset)
    ids = ["1", "2", "3", "4"]
    repo = make_project(
        tmp_path,
        preset,
        tasks_md(
            *[(tid, f"Write file {tid}", write_block(f"out/file{tid}.txt", f"file {tid}")) for tid in ids]
        ),
    )
    run = run_tuiorch(repo, env)
    report_times(request, preset, run, ids)
    assert run.code == 0, (run.of("task_failed"), run.of("conflict"), run.stderr[-2000:])
    assert sorted(e["task"] for e in run.of("merged")) == ids
    for tid in ids:
        assert git(repo, "show", f"main:out/file{tid}.txt") == f"file {tid}"
        calls = server.calls(task_id=tid)
        assert calls, f"the model never heard of task {tid}"
        # The task list is not pulled into an agent's context: no other task's text reaches its model.
        # (Titles may, as merged commits' subjects: Claude Code shows the model the recent commits.)
        others = [f"write out/file{other}.txt" for other in ids if other != tid]
        leaked = [title for title in others for call in calls if title in json.dumps(call.body)]
        assert not leaked, f"task {tid}'s model was shown other tasks: {sorted(set(leaked))}"
    assert len(git(repo, "log", "--merges", "--first-parent", "--format=%H", "main").splitlines()) == 4
    assert git(repo, "status", "--porcelain") == ""
    if preset in COMMITS_ITSELF:
        for merged in run.of("merged"):
            tid = merged["task"]
            branch_side = git(repo, "log", "--format=%B", f"{merged['commit']}^2", "-n", "1")
            # The agent's own commit, with the message and trailer the prompt asked for.
            assert MODEL_TRAILER in branch_side and f"Refs: TASKS.md#task-{tid}" in branch_side, branch_side


#: Two tasks writing the same file apart; task 2's model answers later, so task 1 usually merges first.
CONFLICTING_PAIR = tasks_md(
    ("1", "One says hello", write_block("shared.txt", "hello from one")),
    ("2", "Two says goodbye", write_block("shared.txt", "goodbye from two") + "\nmodel: slow 2"),
)


@pytest.mark.parametrize("preset", presets("conflict"))
def test_a_conflicting_pair_merges_one_and_keeps_the_other_for_triage(
    preset: str, tmp_path: Path, env_for: Callable[..., dict[str, str]]
) -> None:
    env = env_for(preset)
    repo = make_project(
        tmp_path,
        preset,
        CONFLICTING_PAIR,
    )
    run = run_tuiorch(repo, env)
    assert run.code == 1, run.events[-1:]
    # Whichever finishes first merges (task 2's model is slower, but the CLIs' start-up times vary).
    [first] = [e["task"] for e in run.of("merged")]
    second = "2" if first == "1" else "1"
    words = {"1": "hello from one", "2": "goodbye from two"}
    assert run.of("conflict", second) and run.of("conflict", second)[-1]["paths"] == ["shared.txt"]
    assert git(repo, "show", "main:shared.txt") == words[first]
    assert git(repo, "show", f"task-{second}:shared.txt") == words[second], (
        "the conflicting work was not kept"
    )


@pytest.mark.parametrize("preset", presets("resolver"))
def test_the_resolver_agent_merges_both_sides(
    preset: str, tmp_path: Path, server: ModelServer, env_for: Callable[..., dict[str, str]]
) -> None:
    """on_conflict = "agent": the same CLI resolves the conflict; both sides reach main; the task's message stays."""
    env = env_for(preset)
    repo = make_project(
        tmp_path,
        preset,
        CONFLICTING_PAIR,
        merge='on_conflict = "agent"',
    )
    run = run_tuiorch(repo, env)
    assert any(RESOLVE_MARKER in json.dumps(call.body) for call in server.calls()), (
        "no resolver prompt reached the model"
    )
    assert run.code == 0, (run.events[-3:], run.stderr[-2000:])
    assert sorted(e["task"] for e in run.of("merged")) == ["1", "2"]
    shared = git(repo, "show", "main:shared.txt")
    assert "hello from one" in shared and "goodbye from two" in shared and "<<<<<<<" not in shared
    resolved = next(e["task"] for e in run.events if e["event"] == "conflict")
    merged = run.of("merged", resolved)[-1]["commit"]
    resolution = git(repo, "log", "--format=%B", "-n", "1", f"{merged}^2")
    assert f"Refs: TASKS.md#task-{resolved}" in resolution, resolution


@pytest.mark.parametrize("preset", presets("api_error"))
def test_a_failed_model_call_fails_the_task_in_the_clis_words(
    preset: str, tmp_path: Path, server: ModelServer, env_for: Callable[..., dict[str, str]]
) -> None:
    status, words = API_ERRORS[preset]
    env = env_for(preset)
    repo = make_project(
        tmp_path, preset, tasks_md(("1", "Never answered", f"model: fail {status}")), retries=1
    )
    head = git(repo, "rev-parse", "main")
    run = run_tuiorch(repo, env)
    assert not run.of("merged") and not run.of("task_empty"), run.events
    assert git(repo, "rev-parse", "main") == head, "a failed model call changed main"
    assert run.code == 1
    assert words.lower() in run.reason("1").lower(), run.reason("1")
    # The retry's prompt tells the agent what went wrong the first time.
    last_prompt = json.dumps(server.calls(task_id="1")[-1].body)
    assert words.lower() in last_prompt.lower()


@pytest.mark.parametrize("preset", presets("turn_limit", only=tuple(TURN_LIMITS)))
def test_the_clis_turn_limit_stops_the_task_without_merging(
    preset: str, tmp_path: Path, env_for: Callable[..., dict[str, str]]
) -> None:
    limit, words = TURN_LIMITS[preset]
    env = env_for(preset, max_turns=limit)
    repo = make_project(tmp_path, preset, tasks_md(("1", "Looks forever", "model: loop")))
    head = git(repo, "rev-parse", "main")
    run = run_tuiorch(repo, env)
    assert not run.of("merged") and git(repo, "rev-parse", "main") == head
    assert run.code == 1
    if words:
        assert words in run.reason("1").lower(), run.reason("1")
    else:
        assert run.of("task_empty", "1") or run.of("task_failed", "1")


@pytest.mark.skipif(bubblewrap_problem() is not None, reason=f"agents cannot be confined: {bubblewrap_problem()}")
@pytest.mark.parametrize("preset", presets("escape", only=("claude", "codex", "opencode", "gemini")))
def test_a_confined_cli_that_tries_to_escape_changes_only_its_branch(
    preset: str, tmp_path: Path, env_for: Callable[..., dict[str, str]]
) -> None:
    """The model has the CLI move main and another branch, push to the user's repository and write their
    checkout once it has committed its work: each attempt fails, and only its own commit merges."""
    env = env_for(preset)
    repo = make_project(tmp_path, preset, tasks_md(("1", "Escapes", "model: escape\n" + write_block("mine.txt", "mine"))))
    git(repo, "branch", "other")
    main, other, readme = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "other"), (repo / "README.md").read_text()
    run = run_tuiorch(repo, env)
    assert run.code == 0, run.stderr[-2000:] + str(run.events)[:2000]
    assert all(e["confined"] for e in run.of("task_started"))
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    assert "REFUSED" in log and "ESCAPED" not in log.replace("echo ESCAPED", ""), log[-3000:]
    merged = run.of("merged", "1")[0]["commit"]
    assert git(repo, "rev-parse", f"{merged}^1") == main
    assert git(repo, "show", f"{merged}:mine.txt") == "mine"
    assert git(repo, "rev-parse", "other") == other
    assert (repo / "README.md").read_text() == readme and git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("preset", presets("timeout"))
def test_a_model_that_never_answers_times_out_and_leaves_no_process(
    preset: str, tmp_path: Path, env_for: Callable[..., dict[str, str]]
) -> None:
    env = env_for(preset)
    repo = make_project(tmp_path, preset, tasks_md(("1", "Waits forever", "model: hang")), timeout="8s")
    run = run_tuiorch(repo, env, timeout=120)
    failed = run.of("task_failed", "1")
    assert failed and not run.of("merged"), run.events
    assert failed[-1].get("timed_out") or "timed out" in run.reason("1"), failed[-1]
    assert run.seconds < 90


@pytest.mark.parametrize("preset", presets("huge_prompt"))
def test_a_300_kb_prompt_reaches_the_model(
    preset: str, tmp_path: Path, server: ModelServer, env_for: Callable[..., dict[str, str]]
) -> None:
    env = env_for(preset)
    filler = "\n".join(f"Background line {n:05d}: " + "lorem ipsum dolor sit amet " * 3 for n in range(3000))
    assert len(filler) > 300_000
    body = write_block("big.txt", "small result") + "\n\n" + filler
    repo = make_project(tmp_path, preset, tasks_md(("1", "Has a huge description", body)))
    run = run_tuiorch(repo, env)
    assert run.code == 0, (run.reason("1"), run.events[-2:])
    assert git(repo, "show", "main:big.txt") == "small result"
    assert any(len(json.dumps(call.body)) > 300_000 for call in server.calls(task_id="1"))


# -- the TUI -------------------------------------------------------------------------------------------------

#: What the TUI must show while the agent writes the file: the tool it runs (aider: its progress line).
LIVE_STATUS = {
    "claude": "Write",
    "gemini": "write_file",
    "opencode": "write",
    "codex": "printf",
    "aider": "writing slow.txt",
}
#: What the TUI must show of a successful run's usage, per preset: cost where the CLI reports it.
USAGE_SHOWN = {"claude": "$", "aider": "$", "codex": "tok", "gemini": "tok", "opencode": "tok"}


@pytest.mark.parametrize("preset", presets("pane"))
async def test_the_tui_shows_live_status_the_failure_reason_and_the_cost(
    preset: str, tmp_path: Path, env_for: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_ui_app import SIZE, make_app, quit_app, wait_for
    from tuiorch.events import TaskStatus
    from tuiorch.ui.widgets import QueuePane, WorkerPane

    env = env_for(preset)
    status, words = API_ERRORS[preset]
    repo = make_project(
        tmp_path,
        preset,
        tasks_md(
            ("1", "Writes slowly", write_block("slow.txt", "slow") + "\nmodel: slow 1.5"),
            ("2", "Never answered", f"model: fail {status}"),
        ),
        workers=1,
    )
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(repo)

    seen: list[str] = []

    def screen_text() -> str:
        parts = [str(app.query_one("#header").render())]
        for pane in app.query(WorkerPane):
            parts += [str(pane.border_title), str(pane.border_subtitle)]
            parts += [str(label.render()) for label in pane.query(".status, .note")]
        queue = app.query_one(QueuePane)
        for tid in ("1", "2"):
            line = queue.line_of(tid)
            if line is not None:
                parts += [str(line.state), str(line.reason)]
        text = "\n".join(parts)
        seen.append(text)
        return text

    app = make_app(repo, watch_tasks=False)
    async with app.run_test(size=SIZE) as pilot:
        # Live: the tool the agent runs, while it runs.
        try:
            await wait_for(pilot, lambda: LIVE_STATUS[preset] in screen_text(), timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{LIVE_STATUS[preset]!r} never shown; last screens: {seen[-2:]}") from exc
        await wait_for(
            pilot, lambda: app.orch.records["2"].status in (TaskStatus.FAILED, TaskStatus.MERGED), timeout=150
        )
        await wait_for(pilot, lambda: words.lower() in screen_text().lower(), timeout=10)
        await wait_for(pilot, lambda: USAGE_SHOWN[preset] in screen_text(), timeout=10)
        assert app.orch.records["1"].status is TaskStatus.MERGED
        assert app.orch.records["2"].status is TaskStatus.FAILED
        await quit_app(pilot, app)


# Timing-sensitive on a loaded 2-core machine (real processes, kill -9 at chosen moments, frames drawn
# while agents run): a failure is tried again up to twice, and the report counts each rerun.
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)
