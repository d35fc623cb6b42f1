"""Agents and orchestrators that misbehave, through real headless runs; kill -9 and resume.

The helpers at the top (a scriptable agent, subprocess runs, the end-state checks that prove nothing was
lost) are shared with tests/test_soak.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from tests.conftest import git

#: A custom-preset agent whose behaviour per task comes from modes.json: {"task id": "mode", ...}.
AGENT_SCRIPT = textwrap.dedent(
    """\
    import json, os, shutil, signal, subprocess, sys, time
    from pathlib import Path

    modes_file, worktree = Path(sys.argv[1]), Path(sys.argv[2])
    task = os.environ["TUIORCH_TASK"]
    mode = json.loads(modes_file.read_text()).get(task, "write")
    pids = modes_file.parent / "pids"
    pids.mkdir(exist_ok=True)
    (pids / f"{task}-{os.getpid()}").write_text(str(os.getpgid(0)))

    def commit(name, text, message):
        (worktree / name).write_text(text)
        subprocess.run(["git", "add", name], cwd=worktree, check=True)
        # A re-run on top of its own kept commit has nothing new to commit: that is not an error.
        if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=worktree).returncode:
            subprocess.run(["git", "commit", "-q", "-m", message], cwd=worktree, check=True)

    print(f"agent for task {task}: {mode}", flush=True)
    if mode == "write":
        commit(f"task-{task}.txt", f"task {task}\\n", f"feat: task {task}")
    elif mode == "hang_tree":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        (pids / f"{task}-child").write_text(str(child.pid))
        print("hanging with a child", flush=True)
        time.sleep(300)
    elif mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "rmtree":
        shutil.rmtree(worktree)
        print("deleted my own worktree", flush=True)
    elif mode == "checkout_other":
        subprocess.run(["git", "checkout", "-q", "-b", f"other-{task}"], cwd=worktree, check=True)
        commit(f"other-{task}.txt", "elsewhere\\n", f"feat: on another branch for {task}")
    elif mode in ("commit_then_hang", "lock_then_hang"):
        # First attempt: commit part A and hang (the orchestrator is killed meanwhile). A resumed
        # attempt finds A already on its branch, adds part B and finishes.
        if (worktree / f"{task}-a.txt").exists():
            commit(f"{task}-b.txt", "b\\n", f"feat: task {task} part B")
        else:
            commit(f"{task}-a.txt", "a\\n", f"feat: task {task} part A")
            print("part A committed", flush=True)
            if mode == "lock_then_hang":
                # As if killed in the middle of a `git add`: index.lock outlives its holder.
                lock = subprocess.run(
                    ["git", "rev-parse", "--git-path", "index.lock"],
                    cwd=worktree, capture_output=True, text=True, check=True,
                ).stdout.strip()
                (worktree / f"{task}-half.txt").write_text("half done\\n")
                Path(worktree, lock).write_text("")
            (pids / f"hanging-{task}").write_text("")  # all said and done: only the hang is left
            time.sleep(300)
    """
)


def write_project(
    repo: Path,
    tasks_md: str,
    *,
    workers: int = 2,
    agent: str = '[agent]\npreset = "demo"\n',
    extra: str = "",
    timeout: str = "60s",
) -> None:
    """tuiorch.toml and TASKS.md, committed so main's checkout starts clean.

    Unconfined: these agents report their process ids in files beside the test (outside their worktree),
    and the crash tests need agents that outlive a killed tuiorch, as unconfined ones do.
    """
    (repo / "tuiorch.toml").write_text(
        f'workers = {workers}\n\n{agent}timeout = "{timeout}"\nstuck_after = "0"\nretries = 0\n'
        f'confine = "off"\n{extra}'
    )
    (repo / "TASKS.md").write_text(textwrap.dedent(tasks_md))
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")


def custom_agent(tmp_path: Path, modes: dict[str, str]) -> str:
    """Write the scriptable agent and its modes; return the [agent] table that runs it."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    modes_file = tmp_path / "modes.json"
    modes_file.write_text(json.dumps(modes))
    command = json.dumps([sys.executable, str(script), str(modes_file), "{worktree}"])
    return f'[agent]\npreset = "custom"\ncommand = {command}\n'


def tuiorch_cmd(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "tuiorch", *args]


def run_headless(
    repo: Path,
    *args: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> tuple[int, list[dict], str]:
    """A whole `tuiorch run --headless --json`; returns exit code, events, stderr."""
    done = subprocess.run(
        tuiorch_cmd("run", "--headless", "--json", *args, python=python),
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    events = []
    for line in done.stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return done.returncode, events, done.stderr


def start_headless(repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        tuiorch_cmd("run", "--headless", "--json"),
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def kill9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the orchestrator alone (its agents live in their own process groups and survive it)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def of(events: list[dict], name: str, task: str | None = None) -> list[dict]:
    return [e for e in events if e.get("event") == name and (task is None or e.get("task") == task)]


def merges_per_task(repo: Path, branch: str = "main") -> dict[str, int]:
    """How many merge commits on `branch`'s first-parent line cite each task ("Refs: TASKS.md#task-N")."""
    counts: dict[str, int] = {}
    log = git(repo, "log", "--first-parent", "--merges", "--format=%B%x00", branch)
    for message in log.split("\x00"):
        for line in message.splitlines():
            if line.startswith("Refs: TASKS.md#task-"):
                task = line.removeprefix("Refs: TASKS.md#task-").strip()
                counts[task] = counts.get(task, 0) + 1
    return counts


def task_branches(repo: Path) -> list[str]:
    return [b for b in git(repo, "branch", "--format=%(refname:short)").split() if b.startswith("task-")]


def worktrees(repo: Path) -> list[str]:
    listing = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.split(" ", 1)[1] for line in listing if line.startswith("worktree ")]


def processes_under(folder: Path) -> list[psutil.Process]:
    """Live processes whose working directory is `folder` or below (also a deleted one)."""
    found = []
    prefix = str(folder.resolve())
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.cwd().startswith(prefix):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_leftovers(folder: Path) -> int:
    """Test teardown: SIGKILL the process group of anything still running under `folder`; how many."""
    leftovers = processes_under(folder)
    for proc in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    if leftovers:
        time.sleep(0.2)
    return len(leftovers)


def main_has_markers(repo: Path) -> bool:
    found = subprocess.run(["git", "grep", "-l", "-e", "^<<<<<<< ", "-e", "^>>>>>>> ", "main"], cwd=repo)
    return found.returncode == 0


def end_state_problems(repo: Path, expected_tasks: list[str], worktree_dir: Path) -> list[str]:
    """Everything wrong with a repository after a run that should have merged `expected_tasks`."""
    problems = []
    counts = merges_per_task(repo)
    wrong = {t: counts.get(t, 0) for t in expected_tasks if counts.get(t, 0) != 1}
    if wrong:
        problems.append(f"tasks not merged exactly once: {wrong}")
    if extra := [w for w in worktrees(repo) if Path(w).resolve() != repo.resolve()]:
        problems.append(f"worktrees left: {extra}")
    if worktree_dir.exists() and (left := [p.name for p in worktree_dir.iterdir()]):
        problems.append(f"files left in the worktrees folder: {left}")
    if branches := task_branches(repo):
        problems.append(f"task branches left: {branches}")
    if main_has_markers(repo):
        problems.append("conflict markers on main")
    if status := git(repo, "status", "--porcelain"):
        problems.append(f"main's checkout is dirty: {status}")
    if procs := processes_under(worktree_dir):
        problems.append(f"processes left under the worktrees folder: {[p.pid for p in procs]}")
    return problems


# ======================================================================================== the tests

import random  # noqa: E402  (kept with the tests that use it)

import pytest  # noqa: E402

from tuiorch.state import load_state  # noqa: E402


@pytest.fixture
def reaper(tmp_path: Path):  # noqa: ANN201
    """Whatever a failing test leaves running under tmp_path is killed; the test itself asserts none is left."""
    yield
    kill_leftovers(tmp_path)


def worktree_dir(repo: Path) -> Path:
    return repo.parent / f"{repo.name}-worktrees"


# -- agents that misbehave --------------------------------------------------------------------------------


def test_a_hanging_agent_is_killed_with_its_whole_process_tree(
    repo: Path, tmp_path: Path, reaper: None
) -> None:
    agent = custom_agent(tmp_path, {"1": "hang_tree", "2": "write"})
    write_project(repo, "## Task 1: Hangs\n\n## Task 2: Works\n", agent=agent, timeout="2s")
    started = time.monotonic()
    code, events, stderr = run_headless(repo)
    assert code == 1, stderr
    assert time.monotonic() - started < 30
    failed = of(events, "task_failed", "1")[0]
    assert "timed out" in failed["reason"]
    assert of(events, "task_finished", "1")[0]["timed_out"] is True
    assert merges_per_task(repo) == {"2": 1}
    child = int((tmp_path / "pids" / "1-child").read_text())
    assert not alive(child), "the agent's child outlived the timeout"
    assert processes_under(worktree_dir(repo)) == []


def test_an_agent_killed_by_sigkill_fails_and_the_signal_is_named(
    repo: Path, tmp_path: Path, reaper: None
) -> None:
    agent = custom_agent(tmp_path, {"1": "sigkill"})
    write_project(repo, "## Task 1: Dies\n\n## Task 2: Works\n", agent=agent)
    code, events, stderr = run_headless(repo)
    assert code == 1, stderr
    assert of(events, "task_finished", "1")[0]["signal"] == "SIGKILL"
    failed = of(events, "task_failed", "1")[0]
    assert failed["signal"] == "SIGKILL" and "SIGKILL" in failed["reason"]
    assert merges_per_task(repo) == {"2": 1}
    assert worktrees(repo) == [str(repo)]


def test_a_flood_of_output_is_logged_line_for_line(repo: Path) -> None:
    write_project(repo, "## Task 1: Floods\nlines: 200000\n\n```write flood.txt\ndone\n```\n")
    code, events, stderr = run_headless(repo)
    assert code == 0, stderr
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    numbers = [int(line.split()[3]) for line in log.splitlines() if line.startswith("demo output line ")]
    assert numbers == list(range(1, 200001))
    assert merges_per_task(repo) == {"1": 1}


def test_an_agent_that_deletes_its_own_worktree_fails_cleanly(
    repo: Path, tmp_path: Path, reaper: None
) -> None:
    agent = custom_agent(tmp_path, {"1": "rmtree", "2": "write", "3": "write"})
    write_project(
        repo, "## Task 1: Self-destructs\n\n## Task 2: Works\n\n## Task 3: Works too\n", agent=agent
    )
    head = git(repo, "rev-parse", "main")
    code, events, stderr = run_headless(repo, timeout=60)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert of(events, "run_finished")
    final = {
        e["task"]: e["event"]
        for e in events
        if e.get("task") and e["event"] in ("merged", "task_failed", "task_empty")
    }
    assert final == {"1": final["1"], "2": "merged", "3": "merged"} and final["1"] in (
        "task_failed",
        "task_empty",
    )
    assert merges_per_task(repo) == {"2": 1, "3": 1}
    assert git(repo, "merge-base", "--is-ancestor", head, "main") == ""
    assert worktrees(repo) == [str(repo)]
    assert not worktree_dir(repo).exists() or not any(worktree_dir(repo).iterdir())
    assert git(repo, "status", "--porcelain") == ""


def test_an_agent_that_checks_out_another_branch_does_not_touch_main(
    repo: Path, tmp_path: Path, reaper: None
) -> None:
    agent = custom_agent(tmp_path, {"1": "checkout_other", "2": "write"})
    write_project(repo, "## Task 1: Wanders off\n\n## Task 2: Works\n", agent=agent, workers=1)
    code, events, stderr = run_headless(repo)
    assert code == 1 and "Traceback" not in stderr
    assert merges_per_task(repo) == {"2": 1}
    failed = of(events, "task_failed", "1")[0]
    assert "other-1" in failed["reason"]  # the user is told where the work went
    assert (
        git(repo, "log", "-1", "--format=%s", "other-1") == "feat: on another branch for 1"
    )  # and it is kept
    files_on_main = git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert "other-1.txt" not in files_on_main
    assert "task-2.txt" in files_on_main
    assert git(repo, "fsck", "--no-progress") == ""
    assert worktrees(repo) == [str(repo)]
    assert git(repo, "status", "--porcelain") == ""
    assert not main_has_markers(repo)


# -- kill -9 of the orchestrator, then resume ---------------------------------------------------------------


def wait_for(predicate, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def branch_ahead(repo: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "rev-list", "--count", f"main..{branch}"], cwd=repo, capture_output=True, text=True
    )
    return done.returncode == 0 and done.stdout.strip() not in ("", "0")


@pytest.mark.parametrize(
    "mode",
    [
        "commit_then_hang",
        "lock_then_hang",
    ],
)
def test_kill9_while_an_agent_runs_then_resume_keeps_its_commits_and_merges_once(
    repo: Path, tmp_path: Path, reaper: None, mode: str
) -> None:
    agent = custom_agent(tmp_path, {"1": mode, "2": "write"})
    # Task 2 waits for 1, so no merge is under way at the kill: this test is about the running agent.
    write_project(repo, "## Task 1: Two parts\n\n## Task 2: Works\ndepends: 1\n", agent=agent, workers=2)
    proc = start_headless(repo)
    # Killed once the agent hangs: killed while it still prints, it would die of the closed pipe.
    wait_for(lambda: (tmp_path / "pids" / "hanging-1").exists())
    part_a = git(repo, "rev-parse", "task-1")
    kill9(proc)
    old_groups = [int(p.read_text()) for p in (tmp_path / "pids").glob("1-*") if p.name != "1-child"]
    assert old_groups and any(alive(g) for g in old_groups)  # the crash left the agent running

    code, events, stderr = run_headless(repo)
    assert "Traceback" not in stderr, stderr[-2000:]
    assert code == 0, stderr + json.dumps(events)[:2000]
    assert not any(alive(g) for g in old_groups), "resume did not kill the crashed run's agent"
    assert git(repo, "merge-base", "--is-ancestor", part_a, "main") == ""  # part A kept, not redone
    assert "feat: task 1 part B" in git(repo, "log", "--format=%s", "main")
    assert end_state_problems(repo, ["1", "2"], worktree_dir(repo)) == []


TASKS_6 = "".join(f"## Task {i}: Task {i}\nsleep: 0.2\n```write f{i}.txt\n{i}\n```\n\n" for i in range(1, 7))


@pytest.mark.parametrize("trigger", ["merge_started", "merged"])
def test_kill9_around_a_merge_then_resume_merges_each_task_exactly_once(
    repo: Path, reaper: None, trigger: str
) -> None:
    write_project(repo, TASKS_6, workers=2)
    for _ in range(3):  # kill at the first, second and third merge moment
        proc = start_headless(repo)
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line).get("event") == trigger:
                break
        kill9(proc)
        kill_leftovers(worktree_dir(repo))  # stand-in for the resume's own killing, so runs don't overlap
    code, events, stderr = run_headless(repo)
    problems = end_state_problems(repo, [str(i) for i in range(1, 7)], worktree_dir(repo))
    assert problems == [] and code == 0, (problems, stderr)


def test_kill9_at_random_moments_never_loses_or_doubles_a_merge(repo: Path, reaper: None) -> None:
    rng = random.Random(20261124)
    write_project(repo, TASKS_6, workers=3)
    kills = 0
    for _ in range(6):
        proc = start_headless(repo)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is None:
            kills += 1
        kill9(proc)
        # A kill in the middle of a state write leaves the old file or the new one, never a torn one
        # (load_state raises on a torn file). A kill before the first write, on a slow start, leaves none.
        load_state(repo / ".git")
    code, events, stderr = run_headless(repo)
    assert "Traceback" not in stderr
    counts = merges_per_task(repo)
    assert all(n <= 1 for n in counts.values()), f"a task merged twice: {counts}"
    assert not main_has_markers(repo)
    problems = end_state_problems(repo, [str(i) for i in range(1, 7)], worktree_dir(repo))
    failures = [e.get("reason") for e in events if e.get("event") == "task_failed"]
    assert problems == [], f"after {kills} kills: {problems}; failures: {failures}"
    assert code == 0, stderr


# Timing-sensitive on a loaded 2-core machine (real processes, kill -9 at chosen moments, frames drawn
# while agents run): a failure is tried again up to twice, and the report counts each rerun.
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)
