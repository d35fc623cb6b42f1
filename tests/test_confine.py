"""Confined agents: a hostile agent (a real program) tries every escape under a real tuiorch run with
bubblewrap; nothing outside its worktree and branch changes, and its own commit still merges."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from textual.widgets import Label

from tests.conftest import git, make_repo
from tests.test_faults import run_headless
from tests.test_headless import write_project
from tests.test_ui_app import SIZE, make_app, quit_app, wait_for
from tuiorch.config import PRESETS
from tuiorch.confine.bwrap import SandboxSpec, bubblewrap_problem, sandbox_argv, state_paths
from tuiorch.confine.sandbox import confined_preset
from tuiorch.ui.widgets import WorkerPane

needs_bwrap = pytest.mark.skipif(bubblewrap_problem() is not None, reason=f"{bubblewrap_problem()}")

# Each escape is a shell command run from the agent's worktree; the agent prints what happened to each,
# then commits its legitimate work on its own branch.
HOSTILE = textwrap.dedent(
    """\
    import json, os, signal, subprocess, sys
    from pathlib import Path

    facts = json.loads(Path(sys.argv[1]).read_text())
    repo, other_slot, outside = facts["repo"], facts["other_slot"], facts["outside"]
    # The legitimate work first, committed on its own branch: the escapes below have a commit to push.
    Path("feature.txt").write_text("legitimate work\\n")
    subprocess.run(["git", "add", "feature.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "feat: the legitimate work"], check=True)
    escapes = {
        "update-ref main": ["git", "-C", repo, "update-ref", "refs/heads/main", "HEAD"],
        "push . HEAD:main": ["git", "push", "-q", ".", "HEAD:main"],
        "push to the user's repository": ["git", "push", "-q", repo, "HEAD:main"],
        "branch -f other": ["git", "-C", repo, "branch", "-f", "other", "HEAD"],
        "own branch -f other": ["git", "branch", "-f", "other", "HEAD"],
        "reset --hard in the user's checkout": ["git", "-C", repo, "reset", "-q", "--hard", "HEAD~1"],
        "gc --prune=now in the user's repository": ["git", "-C", repo, "gc", "-q", "--prune=now"],
        "write the user's checkout": ["sh", "-c", f"echo pwned > {repo}/README.md"],
        "write another slot's worktree": ["sh", "-c", f"echo pwned > {other_slot}/file.txt"],
        "write $HOME": ["sh", "-c", "echo pwned > $HOME/escaped.txt"],
        "write /tmp outside its own": ["sh", "-c", f"echo pwned > {outside}"],
    }
    for name, argv in escapes.items():
        done = subprocess.run(argv, capture_output=True, text=True)
        print(f"ESCAPE {name}: exit {done.returncode} {done.stderr.strip()[-160:]!r}", flush=True)
    try:
        os.kill(facts["victim"], signal.SIGKILL)
        print("ESCAPE kill another agent: sent", flush=True)
    except OSError as exc:
        print(f"ESCAPE kill another agent: {exc}", flush=True)
    # Switch to main in its own repository and commit there, then come back: main must not move.
    subprocess.run(["git", "checkout", "-q", "main"], check=True)
    Path("on-main.txt").write_text("should never reach main\\n")
    subprocess.run(["git", "add", "on-main.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "sneaked onto main"], check=True)
    subprocess.run(["git", "checkout", "-q", os.environ["TUIORCH_BRANCH"]], check=True)
    subprocess.run(["git", "gc", "-q", "--prune=now"], check=True)
    print("committed", flush=True)
    # Last, as it also wipes the agent's own repository: delete the user's.
    done = subprocess.run(["rm", "-rf", repo], capture_output=True, text=True)
    print(f"ESCAPE delete the repository: exit {done.returncode} {done.stderr.strip()[-160:]!r}", flush=True)
    """
)


def _project(tmp_path: Path, confine: str, agent_code: str = HOSTILE) -> tuple[Path, Path]:
    repo = make_repo(tmp_path / "repo", {"README.md": "# mine\n", "TASKS.md": "## Task 1: Hostile\n"})
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "branch", "other", "HEAD~1")
    script = tmp_path / "hostile.py"
    script.write_text(agent_code)
    facts = tmp_path / "facts.json"
    command = json.dumps([sys.executable, str(script), str(facts)])
    (repo / "tuiorch.toml").write_text(
        f'workers = 1\n[agent]\npreset = "custom"\ncommand = {command}\nconfine = "{confine}"\n'
        'stuck_after = "0"\nretries = 0\n'
    )
    git(repo, "add", "tuiorch.toml")
    git(repo, "commit", "-q", "-m", "config")
    return repo, facts


def _run(repo: Path, env: dict[str, str] | None = None) -> tuple[int, list[dict], str]:
    return run_headless(repo, env=env)


def _refs(repo: Path) -> dict[str, str]:
    lines = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return dict(line.split(" ", 1) for line in lines)


@needs_bwrap
def test_a_hostile_confined_agent_changes_nothing_outside_its_worktree_and_branch(tmp_path: Path) -> None:
    repo, facts = _project(tmp_path, "on")
    other_slot = tmp_path / "repo-worktrees" / "slot-9"
    other_slot.mkdir(parents=True)
    (other_slot / "file.txt").write_text("another agent's work\n")
    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside.txt"
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        facts.write_text(
            json.dumps({"repo": str(repo), "other_slot": str(other_slot), "outside": str(outside), "victim": victim.pid})
        )
        before = _refs(repo)
        code, events, stderr = _run(repo, {**os.environ, "HOME": str(home)})
        assert code == 0, stderr + json.dumps(events)[:3000]
        assert victim.poll() is None, "the confined agent killed a process outside its sandbox"
    finally:
        victim.kill()
        victim.wait()
    started = [e for e in events if e["event"] == "task_started"]
    assert started and all(e["confined"] for e in started)
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    escapes = [line for line in log.splitlines() if line.startswith("ESCAPE")]
    assert len(escapes) == 13, log
    for line in escapes:
        # Inside its own repository and its own /tmp: allowed there, and checked by their effects below.
        if any(own in line for own in ("push . HEAD:main", "own branch -f other", "/tmp outside its own")):
            continue
        assert "exit 0" not in line and ": sent" not in line, line
    after = _refs(repo)
    assert after["refs/heads/other"] == before["refs/heads/other"]
    merged = after["refs/heads/main"]
    assert git(repo, "rev-parse", f"{merged}^1") == before["refs/heads/main"]  # main moved by one merge only
    assert git(repo, "show", f"{merged}:feature.txt") == "legitimate work"
    assert "sneaked onto main" not in git(repo, "log", "--format=%s", "main")
    assert not [ref for ref in after if ref.startswith("refs/tuiorch/")]
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "README.md").read_text() == "# mine\n"
    assert (other_slot / "file.txt").read_text() == "another agent's work\n"
    assert not (home / "escaped.txt").exists() and not outside.exists()
    # The run says what the sandbox refused, naming paths the agent tried to write.
    refused = [e["message"] for e in events if e["event"] == "notice" and "sandbox refused" in e["message"]]
    assert len(refused) == 1 and str(repo) in refused[0], refused
    git(repo, "fsck", "--no-progress")


REWRITER = textwrap.dedent(
    """\
    import subprocess
    from pathlib import Path
    # A branch whose history no longer holds where the attempt started.
    subprocess.run(["git", "checkout", "-q", "--orphan", "fresh"], check=True)
    Path("feature.txt").write_text("rewritten\\n")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "rewritten history"], check=True)
    branch = subprocess.run(["sh", "-c", "echo $TUIORCH_BRANCH"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "branch", "-f", branch, "fresh"], check=True)
    subprocess.run(["git", "checkout", "-q", branch], check=True)
    """
)


@needs_bwrap
def test_a_confined_agent_that_rewrites_its_branch_history_is_refused(tmp_path: Path) -> None:
    repo, facts = _project(tmp_path, "on", REWRITER)
    facts.write_text("{}")
    main = git(repo, "rev-parse", "main")
    code, events, stderr = _run(repo)
    assert code == 1, stderr
    failed = [e for e in events if e["event"] == "task_failed"]
    assert failed and "rewrote its branch" in failed[0]["reason"], failed
    assert git(repo, "rev-parse", "main") == main
    assert "rewritten history" not in git(repo, "log", "--all", "--format=%s")


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with git (and the shell tools git needs) but no bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "true"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_without_bubblewrap_auto_runs_unconfined_with_one_warning(tmp_path: Path) -> None:
    repo, facts = _project(tmp_path, "auto", "from pathlib import Path\nPath('feature.txt').write_text('x')\n")
    facts.write_text("{}")
    code, events, stderr = _run(repo, {**os.environ, "PATH": _path_without_bwrap(tmp_path)})
    assert code == 0, stderr + json.dumps(events)[:2000]
    warnings = [e["message"] for e in events if e["event"] == "notice" and "not confined" in e["message"]]
    assert len(warnings) == 1, warnings
    assert "bubblewrap" in warnings[0] and "move any branch" in warnings[0]
    assert str(repo / "tuiorch.toml") in warnings[0]
    assert not any(e["confined"] for e in events if e["event"] == "task_started")


def test_without_bubblewrap_confine_on_is_refused_up_front(tmp_path: Path) -> None:
    repo, facts = _project(tmp_path, "on")
    main = git(repo, "rev-parse", "main")
    code, events, stderr = _run(repo, {**os.environ, "PATH": _path_without_bwrap(tmp_path)})
    assert code != 0
    assert f"{repo / 'tuiorch.toml'}: [agent] confine" in stderr and "bubblewrap" in stderr
    assert not [e for e in events if e["event"] == "task_started"]
    assert git(repo, "rev-parse", "main") == main


def test_the_sandbox_binds_only_its_worktree_git_and_state_writable(tmp_path: Path) -> None:
    spec = SandboxSpec(
        worktree=Path("/w/slot-1"),
        git_dir=Path("/r/.git/tuiorch/confined/1/git"),
        gitfile=Path("/r/.git/tuiorch/confined/1/gitfile"),
        writable=(Path("/home/u/.codex"),),
        visible=(Path("/tmp/r"),),
    )
    argv = sandbox_argv(spec, ["codex", "exec"])
    assert argv[:4] == ["bwrap", "--ro-bind", "/", "/"]
    assert argv[-3:] == ["--", "codex", "exec"]
    pairs = [(argv[i], argv[i + 1]) for i in range(len(argv) - 1) if argv[i].startswith("--")]
    writable = {target for flag, target in pairs if flag in ("--bind", "--bind-try")}
    assert writable == {"/home/u/.codex", "/w/slot-1", "/r/.git/tuiorch/confined/1/git"}
    # The private tmp comes before what must stay visible in it; the gitfile is bound over .git last.
    assert argv.index("/tmp") < argv.index("/tmp/r")
    assert argv.index("/w/slot-1/.git") > argv.index("/w/slot-1")
    for flag in ("--unshare-pid", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_each_preset_writes_its_own_state_folders() -> None:
    env = {"HOME": "/home/u", "CODEX_HOME": "/srv/codex"}
    assert [s.path for s in state_paths("codex", env)] == [Path("/srv/codex")]
    assert Path("/home/u/.claude") in [s.path for s in state_paths("claude", env)]
    assert Path("/home/u/.local/share/opencode") in [s.path for s in state_paths("opencode", env)]
    assert state_paths("demo", env) == ()


def test_confined_codex_runs_without_its_own_sandbox_and_commits() -> None:
    codex = confined_preset(PRESETS["codex"])
    assert codex.commits and "workspace-write" not in codex.argv and "danger-full-access" in codex.argv
    assert confined_preset(PRESETS["claude"]) == PRESETS["claude"]


@needs_bwrap
async def test_the_pane_says_a_running_agent_is_confined(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_project(repo, "## Task 1: Thinks\nsleep: 30\n", workers=1)
    app = make_app(repo)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query(WorkerPane).first()

        def shows_confined() -> bool:
            """the pane's status line says confined"""
            return "confined" in str(pane.query_one(".status", Label).render())

        await wait_for(pilot, shows_confined)
        assert app.orch.records["1"].confined
        await quit_app(pilot, app)


TWO_PARTS = textwrap.dedent(
    """\
    import subprocess, sys, time
    from pathlib import Path

    def commit(name, message):
        Path(name).write_text(name + "\\n")
        subprocess.run(["git", "add", name], check=True)
        subprocess.run(["git", "commit", "-q", "-m", message], check=True)

    if Path("part-a.txt").exists():  # the resumed attempt finds part A on its branch
        commit("part-b.txt", "feat: part B")
    else:
        commit("part-a.txt", "feat: part A")
        print("part A committed", flush=True)
        time.sleep(300)
    """
)


@needs_bwrap
def test_kill9_with_a_confined_agent_running_keeps_its_commits_and_ends_the_agent(tmp_path: Path) -> None:
    repo, facts = _project(tmp_path, "on", TWO_PARTS)
    facts.write_text("{}")
    main = git(repo, "rev-parse", "main")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiorch", "run", "--headless", "--json"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Part A reaches the task branch while the agent still runs (its commits are brought over as made).
        deadline = time.monotonic() + 60
        while "feat: part A" not in _log_of(repo, "task-1"):
            assert time.monotonic() < deadline, "part A never reached the task branch"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    worktrees = tmp_path / "repo-worktrees"
    deadline = time.monotonic() + 10
    while _processes_under(worktrees):  # the sandbox dies with tuiorch: nothing of the agent is left
        assert time.monotonic() < deadline, _processes_under(worktrees)
        time.sleep(0.1)

    code, events, stderr = _run(repo)
    assert code == 0, stderr + json.dumps(events)[:2000]
    merged = [e["commit"] for e in events if e["event"] == "merged"]
    assert len(merged) == 1 and git(repo, "rev-parse", f"{merged[0]}^1") == main
    assert git(repo, "log", "--format=%s", f"{main}..{merged[0]}^2").splitlines() == ["feat: part B", "feat: part A"]


def _log_of(repo: Path, branch: str) -> str:
    done = subprocess.run(["git", "log", "--format=%s", branch], cwd=repo, capture_output=True, text=True)
    return done.stdout


def _processes_under(folder: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.cwd().startswith(str(folder)):
                found.append(proc.pid)
    return found


WRITES_A_CACHE = textwrap.dedent(
    """\
    import json, sys
    from pathlib import Path
    cache = Path(json.loads(Path(sys.argv[1]).read_text())["cache"])
    try:
        (cache / "entry").write_text("cached\\n")
        print("cache written", flush=True)
    except OSError as exc:
        print(f"cache refused: {exc}", flush=True)
    Path("feature.txt").write_text("work\\n")
    """
)


@needs_bwrap
@pytest.mark.parametrize("listed", [True, False])
def test_agent_writable_lets_a_confined_agent_write_a_listed_path(tmp_path: Path, listed: bool) -> None:
    repo, facts = _project(tmp_path, "on", WRITES_A_CACHE)
    cache = tmp_path / "cache"
    cache.mkdir()
    facts.write_text(json.dumps({"cache": str(cache)}))
    if listed:
        config = (repo / "tuiorch.toml").read_text().replace('confine = "on"', f'confine = "on"\nwritable = ["{cache}"]')
        (repo / "tuiorch.toml").write_text(config)
        git(repo, "commit", "-qam", "widen")
    code, events, stderr = _run(repo)
    assert code == 0, stderr
    log = (repo / ".git" / "tuiorch" / "logs" / "1.log").read_text()
    assert ("cache written" in log) is listed, log
    assert (cache / "entry").exists() is listed


INSTALLED_AGENT = textwrap.dedent(
    """\
    #!{python}
    import subprocess, sys
    from pathlib import Path

    # What an installed CLI does: read the rest of its installation, where it was installed.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "{lib}"))
    import agentlib

    Path("feature.txt").write_text(agentlib.WORK)
    subprocess.run(["git", "add", "feature.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "feat: installed agent"], check=True)
    """
)


@needs_bwrap
@pytest.mark.parametrize("layout", ["npm", "virtualenv"])
def test_a_confined_agent_installed_under_tmp_runs_with_its_whole_installation(
    tmp_path: Path, layout: str
) -> None:
    """An npm CLI's `.bin` entry links into its package; a virtualenv's script reads its `lib`: the
    private /tmp of the sandbox must not hide the rest of an installation made under /tmp."""
    repo, _ = _project(tmp_path, "on")
    prefix = tmp_path / "tools"
    if layout == "npm":
        package = prefix / "node_modules" / "agent-cli"
        lib = package / "lib"
        real = package / "bin" / "cli.py"
        found = prefix / "node_modules" / ".bin"
    else:
        lib = prefix / "lib"
        real = prefix / "bin" / "installed-agent"
        found = prefix / "bin"
    lib.mkdir(parents=True)
    (lib / "agentlib.py").write_text('WORK = "from the installation\\n"\n')
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(INSTALLED_AGENT.format(python=sys.executable, lib="lib"))
    real.chmod(0o755)
    found.mkdir(parents=True, exist_ok=True)
    if not (found / "installed-agent").exists():
        (found / "installed-agent").symlink_to(real)
    config = (repo / "tuiorch.toml").read_text()
    (repo / "tuiorch.toml").write_text(config.replace(config.split("command = ")[1].split("\n")[0], '["installed-agent"]'))
    git(repo, "commit", "-q", "-am", "installed agent")
    env = {**os.environ, "PATH": f"{found}{os.pathsep}{os.environ['PATH']}"}
    code, events, stderr = _run(repo, env)
    assert code == 0, (stderr, [e for e in events if e["event"] == "task_failed"])
    assert (
        git(repo, "show", "main:feature.txt") == "from the installation"
    ), "the installed agent's work should be merged"


@needs_bwrap
def test_a_confined_demo_agent_runs_when_tuiorch_itself_is_installed_under_tmp(tmp_path: Path) -> None:
    """A clone and its virtualenv under /tmp: the private /tmp of the sandbox must not hide tuiorch's own
    package from the demo agent (`python -m tuiorch.demo_agent`)."""
    installed = tmp_path / "clone"
    shutil.copytree(Path(__file__).resolve().parent.parent / "tuiorch", installed / "tuiorch")
    repo = make_repo(tmp_path / "repo", {"TASKS.md": "## Task 1: A\n\n```write a.txt\nfrom the demo\n```\n"})
    (repo / "tuiorch.toml").write_text('[agent]\npreset = "demo"\nconfine = "on"\n')
    git(repo, "add", "tuiorch.toml")
    git(repo, "commit", "-q", "-m", "config")
    # A virtualenv of its own, under /tmp, whose only tuiorch is the copy: the test's own (editable)
    # install must not be what the agent imports.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    code, events, stderr = run_headless(
        repo, env={**os.environ, "PYTHONPATH": str(installed)}, python=str(venv / "bin" / "python")
    )
    assert code == 0, (stderr, [e for e in events if e["event"] == "task_failed"])
    assert git(repo, "show", "main:a.txt") == "from the demo"
