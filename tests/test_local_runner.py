"""LocalRunner with real git worktrees and real processes: output streams live, cancel ends the whole
process tree, and after tuiorch is killed a new runner cleans up what the dead one left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import git
from tuiorch.gitops import GitRepo
from tuiorch.procs import group_alive
from tuiorch.runners.base import AgentCommand, AgentHooks, AgentSpec, Attachment, Workspace
from tuiorch.runners.local import LocalRunner


def runner_for(repo: Path) -> LocalRunner:
    gitrepo = GitRepo(repo)
    return LocalRunner(gitrepo, repo.parent / "wt", gitrepo.git_dir / "tuiorch" / "prompts")


def python_agent(code: str) -> AgentSpec:
    """A spec whose agent is `python -c code` (the prompt file is its stdin)."""
    return AgentSpec(
        task_id="1",
        kind="task",
        attempt=1,
        slot=0,
        branch="task-1",
        base="main",
        keep_commits=False,
        command=lambda ws: AgentCommand(argv=(sys.executable, "-c", code), prompt=f"work in {ws.path}"),
        log_path=Path(os.environ.get("TUIORCH_TEST_LOG", "/dev/null")),
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its parent counts as gone
        return stat.read().split(") ")[1].startswith("Z")


async def test_output_streams_live_and_the_result_lands_on_the_branch(repo: Path, tmp_path: Path) -> None:
    runner = runner_for(repo)
    code = textwrap.dedent("""
        import sys, time
        print("one", flush=True)
        sys.stderr.write("careful\\n"); sys.stderr.flush()
        time.sleep(0.3)
        open("made.txt", "w").write("x\\n")
        print("two", flush=True)
    """)
    spec = python_agent(code)
    spec = AgentSpec(**{**spec.__dict__, "log_path": tmp_path / "1.log"})
    out: list[tuple[float, str]] = []
    err: list[str] = []
    started: list[Attachment] = []
    hooks = AgentHooks(
        on_lines=lambda lines: out.extend((time.monotonic(), line) for line in lines),
        on_stderr=err.extend,
        on_started=started.append,
    )
    handle = await runner.start(spec, hooks)
    assert handle.workspace == str(repo.parent / "wt" / "slot-1")
    assert (repo.parent / "wt" / "slot-1" / "README.md").is_file()
    exit_ = await handle.wait()
    assert exit_.code == 0
    assert [line for _, line in out] == ["one", "two"]
    assert out[1][0] - out[0][0] >= 0.25  # each line arrived as it was printed, not at the end
    assert err == ["careful"]
    assert started and started[0].pgid is not None and started[0].workspace == handle.workspace
    assert (tmp_path / "1.log").read_text() == "one\n[stderr] careful\ntwo\n"

    collected = await handle.collect("feat: made", failed=False)
    assert collected.has_new_commits
    assert collected.tip == git(repo, "rev-parse", "task-1")
    assert git(repo, "show", "--format=%s", "--name-only", "task-1") == "feat: made\n\nmade.txt"
    await handle.release()
    assert git(repo.parent / "wt" / "slot-1", "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    await runner.close()
    assert not (repo.parent / "wt" / "slot-1").exists()


async def test_cancel_ends_the_agent_and_its_children(repo: Path) -> None:
    runner = runner_for(repo)
    code = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    lines: list[str] = []
    handle = await runner.start(python_agent(code), AgentHooks(on_lines=lines.extend))
    waiting = asyncio.create_task(handle.wait())
    for _ in range(200):
        if lines:
            break
        await asyncio.sleep(0.05)
    child = int(lines[0])
    pgid = handle.attachment().pgid
    assert pgid is not None and group_alive(pgid)
    handle.cancel()
    exit_ = await asyncio.wait_for(waiting, 15)
    assert exit_.cancelled
    assert gone(child) and not group_alive(pgid)
    await handle.release()
    await runner.close()


#: Runs a LocalRunner in a process of its own and prints the agent's attachment once the agent has
#: written its file: the test then kills this process with SIGKILL, as a crash would.
DYING_TUIORCH = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from tuiorch.gitops import GitRepo
    from tuiorch.runners.base import AgentCommand, AgentHooks, AgentSpec
    from tuiorch.runners.local import LocalRunner

    AGENT = (
        "import subprocess, sys, time\\n"
        "open('left.txt', 'w').write('half done\\\\n')\\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\\n"
        "print('ready', flush=True)\\n"
        "time.sleep(60)\\n"
    )

    async def main() -> None:
        repo = Path(sys.argv[1])
        git = GitRepo(repo)
        runner = LocalRunner(git, repo.parent / "wt", git.git_dir / "tuiorch" / "prompts")
        spec = AgentSpec(
            task_id="1", kind="task", attempt=1, slot=0, branch="task-1", base="main", keep_commits=False,
            command=lambda ws: AgentCommand(argv=(sys.executable, "-c", AGENT), prompt=""),
            log_path=repo.parent / "1.log",
        )
        handle = None
        def ready(lines):
            print(json.dumps(handle.attachment().to_state()), flush=True)
        handle = await runner.start(spec, AgentHooks(on_lines=ready))
        await handle.wait()

    asyncio.run(main())
""")


def crash_with_an_agent_running(repo: Path) -> Attachment:
    """Start the agent from a tuiorch process, then kill that process with SIGKILL."""
    dying = subprocess.Popen([sys.executable, "-c", DYING_TUIORCH, str(repo)], stdout=subprocess.PIPE, text=True)
    try:
        assert dying.stdout is not None
        saved = Attachment.from_state(json.loads(dying.stdout.readline()))
    finally:
        dying.kill()
        dying.wait()
    assert saved.pgid is not None and group_alive(saved.pgid)  # the agent outlived its tuiorch
    return saved


@pytest.fixture
def orphans() -> list[int]:
    """Process groups a test leaves to the code under test; killed at the end whatever happened."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


async def test_after_a_crash_the_agent_is_ended_and_its_leftovers_kept(repo: Path, orphans: list[int]) -> None:
    saved = crash_with_an_agent_running(repo)
    orphans.append(saved.pgid)
    runner = runner_for(repo)
    spec = python_agent("pass")
    assert await runner.reattach(saved, spec, AgentHooks()) is None  # a local agent's pipes are gone
    notice = await runner.clean_up(saved, leftovers_message="wip: left when tuiorch stopped")
    assert notice == f"ended agent process group {saved.pgid} of the dead run"
    for _ in range(100):
        if not group_alive(saved.pgid):
            break
        await asyncio.sleep(0.02)
    assert not group_alive(saved.pgid)
    assert git(repo, "show", "--format=%s", "--name-only", "task-1") == "wip: left when tuiorch stopped\n\nleft.txt"
    assert git(Path(saved.workspace), "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # released
    assert await runner.end_orphans() == []


async def test_an_agent_whose_group_was_never_saved_is_found_by_its_mark(repo: Path, orphans: list[int]) -> None:
    saved = crash_with_an_agent_running(repo)
    orphans.append(saved.pgid)
    ended = await runner_for(repo).end_orphans()
    assert ended == [f"ended agent process group {saved.pgid} left by the tuiorch run that stopped"]
    for _ in range(100):
        if not group_alive(saved.pgid):
            break
        await asyncio.sleep(0.02)
    assert not group_alive(saved.pgid)


async def test_a_workspace_is_what_the_command_is_rendered_for(repo: Path) -> None:
    seen: list[Workspace] = []

    def command(ws: Workspace) -> AgentCommand:
        seen.append(ws)
        return AgentCommand(argv=(sys.executable, "-c", "import sys; print(sys.stdin.read())"), prompt="hello", prompt_on_stdin=True)

    runner = runner_for(repo)
    lines: list[str] = []
    spec = AgentSpec(**{**python_agent("").__dict__, "command": command})
    handle = await runner.start(spec, AgentHooks(on_lines=lines.extend))
    await handle.wait()
    assert seen == [Workspace(path=handle.workspace, prompt_file=str(runner.prompt_path(spec)))]
    assert lines == ["hello"]
    await handle.release()
    await runner.close()
