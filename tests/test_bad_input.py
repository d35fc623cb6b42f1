"""The bad-input catalogue (docs/BAD_INPUT.md): each case is a real `python -m tuiorch` in a temp dir.

Every refused case must exit 2, say what to do, print no traceback, and leave the repository as it was:
no new branch or ref, no worktree, no run state (logs aside). The few inputs tuiorch handles instead of
refusing are tested for the handling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import git, make_repo

DEMO_TOML = '[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n'
ONE_TASK = "## Task 1: Add alpha\n\n```write alpha.txt\nalpha\n```\n"


def tuiorch(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuiorch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def project(tmp_path: Path, *, toml: str = DEMO_TOML, tasks: str | bytes | None = ONE_TASK) -> Path:
    """A repo with tuiorch.toml and TASKS.md committed (main's checkout clean)."""
    repo = make_repo(tmp_path / "repo")
    (repo / "tuiorch.toml").write_text(toml)
    if isinstance(tasks, bytes):
        (repo / "TASKS.md").write_bytes(tasks)
    elif tasks is not None:
        (repo / "TASKS.md").write_text(tasks)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tuiorch setup")
    return repo


def snapshot(repo: Path) -> dict[str, object]:
    """What a refused run must not change: refs, worktrees, run state (logs excepted), sibling folders."""
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir"))
    state = git_dir / "tuiorch"
    state_files = (
        sorted(
            (str(p.relative_to(state)), p.read_bytes() if p.is_file() else b"")
            for p in state.rglob("*")
            if p.relative_to(state).parts[0] != "logs"
        )
        if state.is_dir()
        else []
    )
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": (git_dir / "HEAD").read_text(),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "status": git(repo, "status", "--porcelain", "--ignored"),
        "state": state_files,
        "siblings": sorted(p.name for p in repo.parent.iterdir()),
    }


@dataclass(frozen=True)
class Case:
    """A bad input: `setup` makes the repo (returns the folder to run in); `hint` must be in stderr."""

    setup: Callable[[Path], Path]
    hints: tuple[str, ...]
    args: tuple[str, ...] = ("run", "--headless")
    env: Callable[[], dict[str, str]] | None = None


def _plain(toml: str = DEMO_TOML, tasks: str | bytes | None = ONE_TASK) -> Callable[[Path], Path]:
    return lambda tmp: project(tmp, toml=toml, tasks=tasks)


def _not_a_repo(tmp: Path) -> Path:
    folder = tmp / "plain"
    folder.mkdir()
    (folder / "TASKS.md").write_text(ONE_TASK)
    return folder


def _no_commits(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "TASKS.md").write_text(ONE_TASK)
    (repo / "tuiorch.toml").write_text(DEMO_TOML)
    return repo


def _bare(tmp: Path) -> Path:
    source = project(tmp)
    bare = tmp / "bare.git"
    git(tmp, "clone", "-q", "--bare", str(source), str(bare))
    return bare


def _detached(tmp: Path) -> Path:
    repo = project(tmp)
    git(repo, "checkout", "-q", "--detach", "HEAD")
    return repo


def _task_branch_with_other_commits(tmp: Path) -> Path:
    repo = project(tmp)
    git(repo, "checkout", "-q", "-b", "task-1")
    (repo / "mine.txt").write_text("someone's own work\n")
    git(repo, "add", "mine.txt")
    git(repo, "commit", "-q", "-m", "work not in main")
    git(repo, "checkout", "-q", "main")
    return repo


def _crashed_run_branch(tmp: Path) -> Path:
    """A crashed run's task-1 with commits, named in its saved state (resumed unless --fresh)."""
    repo = _task_branch_with_other_commits(tmp)
    state = repo / ".git" / "tuiorch" / "state.toml"
    state.parent.mkdir(parents=True)
    state.write_text(
        'version = 1\nbase = "main"\norder = ["1"]\n\n[tasks.1]\nstatus = "running"\nbranch = "task-1"\n'
    )
    return repo


def _tasks_md_is_a_folder(tmp: Path) -> Path:
    repo = project(tmp, tasks=None)
    (repo / "TASKS.md").mkdir()
    (repo / "TASKS.md" / "keep").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a folder named TASKS.md")
    return repo


def _worktrees_under_a_file(tmp: Path) -> Path:
    return project(tmp, toml='worktrees = "README.md/worktrees"\n' + DEMO_TOML)


def _template_empty(tmp: Path) -> Path:
    repo = project(tmp, toml='[prompt]\ntemplate = "prompt.md"\n\n' + DEMO_TOML)
    (repo / "prompt.md").write_text("\n")
    git(repo, "add", "prompt.md")
    git(repo, "commit", "-q", "-m", "empty template")
    return repo


def _no_claude_on_path() -> dict[str, str]:
    # Only python's own folder and the system folders: no `claude` there on any test machine.
    folders = [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
    path = os.pathsep.join(f for f in folders if not (Path(f) / "claude").exists())
    return {**os.environ, "PATH": path}


CASES: dict[str, Case] = {
    # repository state
    "not a git repository": Case(_not_a_repo, ("not inside a git repository", "git init")),
    "repository with no commits": Case(_no_commits, ("no commits", "first commit")),
    "bare repository": Case(_bare, ("bare", "working tree")),
    "base branch missing": Case(
        _plain(toml='base = "develop"\n' + DEMO_TOML), ("develop", "does not exist", "base")
    ),
    "detached HEAD": Case(_detached, ("detached", "git switch")),
    "task branch exists with other commits": Case(
        _task_branch_with_other_commits, ("task-1", "commits not in main", "tuiorch clean --force")
    ),
    "--fresh with a crashed run's task branch holding commits": Case(
        _crashed_run_branch,
        ("task-1", "commits not in main", "tuiorch clean --force"),
        args=("run", "--headless", "--fresh"),
    ),
    "worktree folder under a regular file": Case(_worktrees_under_a_file, ("worktrees", "README.md")),
    # task file
    "missing TASKS.md": Case(_plain(tasks=None), ("TASKS.md", "tuiorch init")),
    "TASKS.md is a folder": Case(_tasks_md_is_a_folder, ("TASKS.md",)),
    "TASKS.md not UTF-8": Case(_plain(tasks=b"## Task 1: caf\xe9\n"), ("TASKS.md", "UTF-8")),
    "TASKS.md duplicate id": Case(
        _plain(tasks="## Task 1: A\n\n## Task 1: B\n"), ("TASKS.md:3", "duplicate")
    ),
    "TASKS.md unknown dependency": Case(_plain(tasks="## Task 1: A\ndepends: 9\n"), ("TASKS.md:", "9")),
    "TASKS.md dependency cycle": Case(
        _plain(tasks="## Task 1: A\ndepends: 2\n\n## Task 2: B\ndepends: 1\n"),
        ("TASKS.md", "cycle", "1 -> 2"),
    ),
    "TASKS.md unsafe id": Case(_plain(tasks="## Task a/b: A\n"), ("TASKS.md:1", "a/b")),
    "TASKS.md unknown priority": Case(
        _plain(tasks="## Task 1: A\npriority: urgent\n"), ("TASKS.md:2", "urgent")
    ),
    "TASKS.md empty title": Case(_plain(tasks="## Task 1:\n"), ("TASKS.md:1", "title")),
    "TASKS.md heading with no space before the id": Case(
        _plain(tasks="## Task 1: A\nbody\n\n## Task2: B\n"), ("TASKS.md:4", "## Task <id>: <title>")
    ),
    "TASKS.md with no task": Case(_plain(tasks="# nothing here yet\n"), ("TASKS.md", "## Task")),
    "tasks.toml unknown key": Case(
        lambda tmp: _tasks_toml(tmp, '[[task]]\nid = "1"\ntitle = "A"\ncolour = "red"\n'),
        ("tasks.toml", "colour"),
    ),
    # config
    "tuiorch.toml not TOML": Case(_plain(toml="workers = [\n"), ("tuiorch.toml",)),
    "unknown config key": Case(_plain(toml=DEMO_TOML + 'timeuot = "5m"\n'), ("tuiorch.toml", "timeuot")),
    "wrong type": Case(_plain(toml='workers = "three"\n' + DEMO_TOML), ("tuiorch.toml", "workers", "three")),
    "bad duration": Case(
        _plain(toml='[agent]\npreset = "demo"\ntimeout = "5 parsecs"\n'),
        ("tuiorch.toml", "timeout", "parsecs"),
    ),
    "unknown preset": Case(
        _plain(toml='[agent]\npreset = "hal9000"\n'), ("tuiorch.toml", "hal9000", "claude")
    ),
    "custom preset without command": Case(
        _plain(toml='[agent]\npreset = "custom"\n'), ("tuiorch.toml", "command")
    ),
    "agent program not installed": Case(
        _plain(toml='[agent]\npreset = "claude"\n'),
        ("claude", "not on PATH", "preset"),
        env=_no_claude_on_path,
    ),
    "prompt template missing": Case(
        _plain(toml='[prompt]\ntemplate = "nope.md"\n\n' + DEMO_TOML), ("tuiorch.toml", "nope.md")
    ),
    "prompt template empty": Case(_template_empty, ("prompt.md", "empty")),
    # command line
    "--workers 0": Case(_plain(), ("--workers",), args=("run", "--headless", "--workers", "0")),
    "--json without --headless": Case(_plain(), ("--json", "--headless"), args=("run", "--json")),
    "unknown command": Case(_plain(), ("invalid choice",), args=("launch",)),
}


def _tasks_toml(tmp: Path, text: str) -> Path:
    repo = project(tmp, toml='tasks = "tasks.toml"\n' + DEMO_TOML, tasks=None)
    (repo / "tasks.toml").write_text(text)
    git(repo, "add", "tasks.toml")
    git(repo, "commit", "-q", "-m", "tasks.toml")
    return repo


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_advice_and_leaves_nothing_behind(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    where = case.setup(tmp_path)
    before = snapshot(where) if (where / ".git").exists() else None
    done = tuiorch(where, *case.args, env=case.env() if case.env else None)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for hint in case.hints:
        assert hint in done.stderr, f"{hint!r} not in {done.stderr!r}"
    if before is not None:
        assert snapshot(where) == before
    assert not (tmp_path / "repo-worktrees").exists()


# -- inputs tuiorch handles rather than refuses --------------------------------------------------------


def test_worktree_folder_inside_the_repo_is_excluded_and_the_run_succeeds(tmp_path: Path) -> None:
    repo = project(tmp_path, toml='worktrees = ".worktrees"\n' + DEMO_TOML)
    done = tuiorch(repo, "run", "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert any(line.strip("/") == ".worktrees" or line.startswith("/.worktrees") for line in exclude), exclude
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "show", "main:alpha.txt") == "alpha"
    assert "worktrees" not in git(repo, "ls-tree", "-r", "--name-only", "main")


def test_a_task_branch_already_merged_into_main_is_reused(tmp_path: Path) -> None:
    """A stale task-1 with nothing main lacks holds no work: it is reset, not refused."""
    repo = project(tmp_path)
    git(repo, "branch", "task-1", "HEAD~1")
    done = tuiorch(repo, "run", "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(repo, "show", "main:alpha.txt") == "alpha"
    assert git(repo, "branch", "--list", "task-1") == ""


def test_a_corrupt_state_file_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    repo = project(tmp_path)
    state = repo / ".git" / "tuiorch" / "state.toml"
    state.parent.mkdir(parents=True)
    state.write_text("order = [\n")
    done = tuiorch(repo, "run", "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "state.toml" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    status = tuiorch(repo, "status")
    assert status.returncode == 0 and "merged" in status.stdout


def test_status_with_a_corrupt_state_file_exits_2_naming_it(tmp_path: Path) -> None:
    repo = project(tmp_path)
    state = repo / ".git" / "tuiorch" / "state.toml"
    state.parent.mkdir(parents=True)
    state.write_text("order = [\n")
    done = tuiorch(repo, "status")
    assert done.returncode == 2
    assert "state.toml" in done.stderr and "delete" in done.stderr
    assert "Traceback" not in done.stderr


def test_unwritable_worktree_folder_exits_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through file modes; the file-in-the-way case covers this check")
    repo = project(tmp_path, toml='worktrees = "../locked/wt"\n' + DEMO_TOML)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        before = snapshot(repo)
        done = tuiorch(repo, "run", "--headless")
        assert done.returncode == 2
        assert "locked" in done.stderr and "Traceback" not in done.stderr
        assert snapshot(repo) == before
    finally:
        locked.chmod(0o700)


def test_python_dash_m_with_no_git_on_path_is_not_a_traceback(tmp_path: Path) -> None:
    """Worktrees are made with the git CLI: without it the user is told, up front."""
    repo = project(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    if shutil.which("git", path=env["PATH"]):
        pytest.skip("git is in python's folder")
    before = snapshot(repo)
    done = tuiorch(repo, "run", "--headless", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "git" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(repo) == before
