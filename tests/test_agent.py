"""AgentProcess with real processes: streaming, exits, timeout, cancel, stuck, process-group cleanup."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil
import pytest

from tuiorch.agent import MAX_LINE_CHARS, AgentExit, AgentProcess, ProcessHooks


def py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def gone(pid: int) -> bool:
    """Dead or a zombie (the container's init may never reap orphans)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# A parent that starts a grandchild (in its process group), reports both pids, then waits silently.
PARENT_WITH_GRANDCHILD = """
import os, signal, subprocess, sys, time
if len(sys.argv) > 1 and sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(os.getpid(), child.pid, flush=True)
time.sleep(60)
"""


def pids_from_first_line(agent: AgentProcess) -> tuple[int, int]:
    parent, child = agent.tail[0].split()
    return int(parent), int(child)


async def wait_for_lines(agent: AgentProcess, count: int = 1, limit: float = 10.0) -> None:
    give_up = time.monotonic() + limit
    while agent.lines < count:
        assert time.monotonic() < give_up, "agent printed nothing"
        await asyncio.sleep(0.02)


async def test_every_line_lands_in_the_log_in_order(tmp_path: Path) -> None:
    seen: list[str] = []
    log = tmp_path / "logs" / "t.log"
    agent = AgentProcess(
        py("for i in range(20000): print(f'line {i}')"), tmp_path, log, hooks=ProcessHooks(on_lines=seen.extend), tail_lines=50
    )
    result = await agent.run()
    expected = [f"line {i}" for i in range(20000)]
    assert result == AgentExit(code=0)
    assert log.read_text().splitlines() == expected
    assert seen == expected
    assert agent.lines == 20000
    assert list(agent.tail) == expected[-50:]


async def test_log_is_appended_not_replaced(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    await AgentProcess(py("print('first attempt')"), tmp_path, log).run()
    await AgentProcess(py("print('second attempt')"), tmp_path, log).run()
    assert log.read_text() == "first attempt\nsecond attempt\n"


async def test_stderr_is_merged_and_env_is_passed(tmp_path: Path) -> None:
    code = "import os, sys; print(os.environ['TASK_ID'], os.environ['PYTHONUNBUFFERED']); sys.stderr.write('oops\\n')"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log", env={"TASK_ID": "7"})
    await agent.run()
    assert list(agent.tail) == ["7 1", "oops"]


async def test_exit_code_is_reported(tmp_path: Path) -> None:
    result = await AgentProcess(py("import sys; sys.exit(3)"), tmp_path, tmp_path / "t.log").run()
    assert (result.code, result.signal, result.timed_out, result.cancelled) == (3, None, False, False)
    assert not result.ok


async def test_death_by_signal_is_reported(tmp_path: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = await AgentProcess(py(code), tmp_path, tmp_path / "t.log").run()
    assert result.code is None
    assert result.signal == "SIGKILL"


async def test_timeout_kills_the_process_and_its_grandchild(tmp_path: Path) -> None:
    agent = AgentProcess(
        py(PARENT_WITH_GRANDCHILD, "stubborn"), tmp_path, tmp_path / "t.log", timeout=1.0, kill_grace=0.3
    )
    started = time.monotonic()
    result = await agent.run()
    parent, child = pids_from_first_line(agent)
    assert result.timed_out and not result.cancelled
    assert result.signal == "SIGKILL"  # it ignored SIGTERM, so the grace period ran out
    assert time.monotonic() - started < 5
    assert gone(parent) and gone(child)


async def test_cancel_kills_the_whole_group(tmp_path: Path) -> None:
    agent = AgentProcess(py(PARENT_WITH_GRANDCHILD), tmp_path, tmp_path / "t.log", kill_grace=0.3)
    run = asyncio.create_task(agent.run())
    await wait_for_lines(agent)
    agent.cancel()
    result = await asyncio.wait_for(run, 10)
    parent, child = pids_from_first_line(agent)
    assert result.cancelled and not result.timed_out
    assert result.signal == "SIGTERM"
    assert gone(parent) and gone(child)


async def test_cancelling_the_awaiting_task_kills_the_group(tmp_path: Path) -> None:
    agent = AgentProcess(py(PARENT_WITH_GRANDCHILD), tmp_path, tmp_path / "t.log")
    run = asyncio.create_task(agent.run())
    await wait_for_lines(agent)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    parent, child = pids_from_first_line(agent)
    assert gone(parent) and gone(child)


async def test_children_holding_the_pipe_do_not_hang_run(tmp_path: Path) -> None:
    # The parent exits at once; its background child inherits stdout and would keep the pipe open for 60 s.
    code = (
        "import subprocess, sys; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(c.pid, flush=True)"
    )
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log", kill_grace=0.5)
    started = time.monotonic()
    result = await asyncio.wait_for(agent.run(), 15)
    assert result.code == 0
    assert time.monotonic() - started < 5
    assert gone(int(agent.tail[0]))


async def test_stuck_fires_once_for_a_silent_agent(tmp_path: Path) -> None:
    idles: list[float] = []
    code = "print('thinking', flush=True); import time; time.sleep(1.5)"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log", stuck_after=0.4, hooks=ProcessHooks(on_stuck=idles.append))
    await agent.run()
    assert len(idles) == 1
    assert idles[0] >= 0.4


async def test_stuck_does_not_fire_for_a_chatty_agent(tmp_path: Path) -> None:
    idles: list[float] = []
    code = "import time\nfor i in range(15):\n    print(i, flush=True); time.sleep(0.1)"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log", stuck_after=0.5, hooks=ProcessHooks(on_stuck=idles.append))
    await agent.run()
    assert idles == []


async def test_file_changes_count_as_activity(tmp_path: Path) -> None:
    # Silent on stdout, but it keeps editing files in the worktree: working, not stuck.
    code = (
        "import time\nfor i in range(12):\n"
        "    open(f'out{i}.txt', 'w').write('x'); time.sleep(0.1)"
    )
    (tmp_path / "wt").mkdir()
    idles: list[float] = []
    agent = AgentProcess(py(code), tmp_path / "wt", tmp_path / "t.log", stuck_after=0.6, hooks=ProcessHooks(on_stuck=idles.append))
    await agent.run()
    assert idles == []


async def test_stuck_resets_when_output_resumes(tmp_path: Path) -> None:
    idles: list[float] = []
    unstuck: list[bool] = []
    code = "import time\nprint('a', flush=True); time.sleep(0.8); print('b', flush=True); time.sleep(0.8)"
    agent = AgentProcess(
        py(code),
        tmp_path,
        tmp_path / "t.log",
        stuck_after=0.3,
        hooks=ProcessHooks(on_stuck=idles.append, on_unstuck=lambda: unstuck.append(True)),
    )
    await agent.run()
    assert len(idles) == 2
    assert unstuck == [True]


async def test_a_megabyte_line_does_not_crash(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    code = "import sys; sys.stdout.write('x' * 1_000_000 + '\\n' + 'done\\n')"
    agent = AgentProcess(py(code), tmp_path, log)
    result = await agent.run()
    assert result.code == 0
    assert log.read_text() == "x" * 1_000_000 + "\ndone\n"  # the log keeps the whole line
    assert list(agent.tail)[-1] == "done"
    assert agent.tail[0].startswith("x" * MAX_LINE_CHARS)
    assert len(agent.tail[0]) < 2 * MAX_LINE_CHARS  # bounded in memory


async def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.buffer.write(b'caf\\xe9\\nok')"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log")
    await agent.run()
    assert list(agent.tail) == ["caf\ufffd", "ok"]  # the unterminated last line is kept too


async def test_shell_metacharacters_are_not_interpreted(tmp_path: Path) -> None:
    prompt = "$(touch pwned); `touch pwned2` | rm -rf / && echo hi"
    agent = AgentProcess(py("import sys; print(sys.argv[1])", prompt), tmp_path, tmp_path / "t.log")
    await agent.run()
    assert list(agent.tail) == [prompt]
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()


async def test_missing_command_is_a_clear_failure(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    result = await AgentProcess(["no-such-agent-cli-xyz", "-p", "hi"], tmp_path, log).run()
    assert result.code == 127
    assert result.error == "cannot start agent: command not found: no-such-agent-cli-xyz"
    assert "command not found: no-such-agent-cli-xyz" in log.read_text()


async def test_runs_in_the_given_directory_with_no_stdin(tmp_path: Path) -> None:
    code = "import os, sys; print(os.getcwd()); print(repr(sys.stdin.read()))"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log")
    await agent.run()
    assert list(agent.tail) == [str(tmp_path), "''"]


# A program that writes half a JSON line to stdout, a warning line to stderr, then the rest of the JSON line.
SPLIT_WRITER = """
import json, sys, time
line = json.dumps({"type": "message", "content": "x" * 5000})
for _ in range(3):
    sys.stdout.write(line[:2000]); sys.stdout.flush()
    sys.stderr.write("[STARTUP] warning in the middle\\n"); sys.stderr.flush()
    time.sleep(0.05)
    sys.stdout.write(line[2000:] + "\\n"); sys.stdout.flush()
"""


async def test_a_stderr_line_never_splits_a_stdout_line(tmp_path: Path) -> None:
    import json

    out: list[str] = []
    err: list[str] = []
    log = tmp_path / "t.log"
    agent = AgentProcess(py(SPLIT_WRITER), tmp_path, log, hooks=ProcessHooks(on_lines=out.extend, on_stderr=err.extend))
    assert (await agent.run()).code == 0
    assert [json.loads(line)["content"] for line in out] == ["x" * 5000] * 3
    assert err == ["[STARTUP] warning in the middle"] * 3
    logged = log.read_text().splitlines()
    assert sorted(logged) == sorted([json.dumps({"type": "message", "content": "x" * 5000})] * 3 + ["[stderr] [STARTUP] warning in the middle"] * 3)


async def test_without_a_stderr_handler_stderr_lines_join_the_output(tmp_path: Path) -> None:
    seen: list[str] = []
    code = "import sys; print('out', flush=True); sys.stderr.write('err one\\nerr two'); sys.stderr.flush()"
    log = tmp_path / "t.log"
    await AgentProcess(py(code), tmp_path, log, hooks=ProcessHooks(on_lines=seen.extend)).run()
    assert sorted(seen) == ["err one", "err two", "out"]
    assert sorted(log.read_text().splitlines()) == ["[stderr] err one", "[stderr] err two", "out"]


async def test_a_prompt_file_is_the_process_stdin(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("p" * 300_000 + "\nend of prompt\n")
    code = "import sys; text = sys.stdin.read(); print(len(text), text.splitlines()[-1])"
    agent = AgentProcess(py(code), tmp_path, tmp_path / "t.log", stdin_path=prompt)
    assert (await agent.run()).code == 0
    assert list(agent.tail) == ["300015 end of prompt"]


async def test_pwd_names_the_agent_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWD", "/somewhere/else")
    (tmp_path / "wt").mkdir()
    agent = AgentProcess(py("import os; print(os.environ['PWD'])"), tmp_path / "wt", tmp_path / "t.log")
    await agent.run()
    assert list(agent.tail) == [str(tmp_path / "wt")]
