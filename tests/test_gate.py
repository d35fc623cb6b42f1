"""The merge check gate against real repos and real processes: main only ever holds commits that passed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygit2.enums import FileMode

from tests.conftest import git, make_repo
from tuiorch.gate import run_check
from tuiorch.gitops import GitRepo, PreparedMerge
from tuiorch.steps.landing import Lander, LandingHooks, LandingOutcome, LandingRequest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Fails when BAD exists, or when x and y both do (each task alone passes; their merge does not).
GREEN_CHECK = [
    sys.executable,
    "-c",
    "import os,sys; print('checking', sorted(os.listdir('.')));"
    "sys.exit(1 if os.path.exists('BAD') or (os.path.exists('x') and os.path.exists('y')) else 0)",
]


async def gated_merge(
    repo: GitRepo,
    branch: str,
    base: str,
    message: str,
    argv: list[str],
    scratch: Path,
    log_path: Path,
    timeout: float | None,
    *,
    on_check: Callable[[PreparedMerge], None] | None = None,
) -> LandingOutcome:
    """One landing through the check gate, as the orchestrator does it."""
    request = LandingRequest(branch, base, message, tuple(argv), scratch, log_path, timeout)
    return await Lander(repo).land(request, LandingHooks(on_check=on_check))


def is_green(files: set[str]) -> bool:
    return "BAD" not in files and not {"x", "y"} <= files


def branch_with(repo: Path, name: str, files: dict[str, str], base: str = "main") -> str:
    """A branch `name` one commit ahead of `base` adding top-level `files` (no worktree needed)."""
    r = pygit2.Repository(str(repo))
    base_commit = r.revparse_single(base).peel(pygit2.Commit)
    builder = r.TreeBuilder(base_commit.tree)
    for rel, text in files.items():
        builder.insert(rel, r.create_blob(text.encode()), FileMode.BLOB)
    sig = pygit2.Signature("Test User", "test@example.com")
    return str(
        r.create_commit(f"refs/heads/{name}", sig, sig, f"task {name}", builder.write(), [base_commit.id])
    )


def user_commit(repo: Path, rel: str) -> str:
    (repo / rel).write_text(f"{rel} by the user\n")
    git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", f"user adds {rel}")
    return git(repo, "rev-parse", "HEAD")


def checked_shas(log: Path) -> tuple[set[str], set[str]]:
    """(passed, failed) commit shas, read back from the headers and footers in the task's log."""
    passed: set[str] = set()
    failed: set[str] = set()
    current = None
    for line in log.read_text().splitlines():
        if m := re.fullmatch(r"== check: .* on ([0-9a-f]{40}) ==", line):
            current = m.group(1)
        elif line.startswith("== check passed") and current:
            passed.add(current)
        elif line.startswith("== check failed") and current:
            failed.add(current)
    return passed, failed


def _gone(pid: int) -> bool:
    """Dead or a zombie (the container's init may never reap orphans)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _in_group_and_alive(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False


def files_at(repo: Path, rev: str) -> set[str]:
    return set(git(repo, "ls-tree", "--name-only", rev).split())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


# ---------------------------------------------------------------- run_check


async def test_check_output_goes_to_the_log_under_a_header(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "t.log"
    log.parent.mkdir()
    log.write_text("agent output before\n")
    argv = [sys.executable, "-c", "import sys\nfor i in range(80): print('line', i)\nsys.exit(3)"]
    result = await run_check(argv, repo, log, timeout=30)
    assert not result.passed and result.exit == 3 and result.reason == "exit 3"
    head = git(repo, "rev-parse", "HEAD")
    text = log.read_text()
    assert text.startswith("agent output before\n== check: ")
    assert f" on {head} ==\n" in text and "line 0\n" in text and "line 79\n" in text
    assert text.rstrip().splitlines()[-1].startswith("== check failed: exit 3")
    tail = result.output_tail.splitlines()
    assert len(tail) == 50 and tail[-2] == "line 79" and tail[-1] == "tuiorch: check exit 3"


async def test_check_timeout_kills_its_whole_process_group(repo: Path, tmp_path: Path) -> None:
    spawn_child_and_hang = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('pgid', os.getpgid(0), 'child', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    result = await run_check([sys.executable, "-c", spawn_child_and_hang], repo, tmp_path / "t.log", 0.5)
    assert not result.passed and result.timed_out and result.reason == "timed out after 0.5s"
    found = re.search(r"pgid (\d+) child (\d+)", result.output_tail)
    assert found is not None
    pgid, child = int(found.group(1)), int(found.group(2))
    assert pgid != os.getpgid(0)
    assert not [p for p in psutil.process_iter(["pid"]) if _in_group_and_alive(p, pgid)]
    assert _gone(child)


async def test_missing_command_is_a_clear_failure(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    result = await run_check(["no-such-check-tool", "-q"], repo, log, None, commit="abc")
    assert not result.passed and result.reason == "cannot start check: command not found: no-such-check-tool"
    assert log.read_text().startswith("== check: no-such-check-tool -q on abc ==\n")
    with pytest.raises(ValueError, match="empty"):
        await run_check([], repo, log, None)


# ---------------------------------------------------------------- the gate


async def test_failing_check_leaves_main_untouched(repo: Path, tmp_path: Path) -> None:
    branch_with(repo, "task-1", {"BAD": "oops\n"})
    before = git(repo, "rev-parse", "main")
    log = tmp_path / "t.log"
    result = await gated_merge(
        GitRepo(repo), "task-1", "main", "m", GREEN_CHECK, tmp_path / "scratch", log, 30
    )
    assert result.kind == "check_failed" and result.commit is None
    assert result.check is not None and result.check.exit == 1 and "'BAD'" in result.check.output_tail
    assert git(repo, "rev-parse", "main") == before and not (repo / "BAD").exists()
    assert result.prepared is not None
    assert checked_shas(log) == (set(), {result.prepared.commit})
    assert git(repo, "status", "--porcelain") == ""


async def test_passing_check_lands_exactly_the_checked_commit(repo: Path, tmp_path: Path) -> None:
    task_tip = branch_with(repo, "task-1", {"ok.txt": "fine\n"})
    before = git(repo, "rev-parse", "main")
    log, scratch = tmp_path / "t.log", tmp_path / "scratch"
    seen: list[PreparedMerge] = []
    result = await gated_merge(
        GitRepo(repo), "task-1", "main", "feat: ok", GREEN_CHECK, scratch, log, 30, on_check=seen.append
    )
    assert result.kind == "merged" and result.checks_run == 1
    main = git(repo, "rev-parse", "main")
    assert main == result.commit == seen[0].commit == git(scratch, "rev-parse", "HEAD")
    assert checked_shas(log) == ({main}, set())
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [before, task_tip]
    assert (repo / "ok.txt").read_text() == "fine\n"


async def test_the_merge_result_is_checked_not_the_branch(repo: Path, tmp_path: Path) -> None:
    """x and y each pass on their own branch; merged together they fail, so the second stays out."""
    branch_with(repo, "task-x", {"x": "1\n"})
    branch_with(repo, "task-y", {"y": "1\n"})
    gr, log, scratch = GitRepo(repo), tmp_path / "t.log", tmp_path / "scratch"
    first = await gated_merge(gr, "task-x", "main", "x", GREEN_CHECK, scratch, log, 30)
    second = await gated_merge(gr, "task-y", "main", "y", GREEN_CHECK, scratch, log, 30)
    assert (first.kind, second.kind) == ("merged", "check_failed")
    assert git(repo, "rev-parse", "main") == first.commit
    assert files_at(repo, "main") == {"README.md", "x"}


async def test_concurrent_commit_during_the_check_is_kept_and_the_merge_rechecked(
    repo: Path, tmp_path: Path
) -> None:
    task_tip = branch_with(repo, "task-1", {"ok.txt": "fine\n"})
    concurrent: list[str] = []

    def user_commits_while_checking(prepared: PreparedMerge) -> None:
        if not concurrent:
            concurrent.append(user_commit(repo, "user.txt"))

    log = tmp_path / "t.log"
    result = await gated_merge(
        GitRepo(repo), "task-1", "main", "m", GREEN_CHECK, tmp_path / "scratch", log, 30,
        on_check=user_commits_while_checking,
    )  # fmt: skip
    assert result.kind == "merged" and result.checks_run == 2
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [concurrent[0], task_tip]
    passed, _failed = checked_shas(log)
    assert len(passed) == 2 and result.commit in passed  # the first one passed but was never landed
    assert "since the merge was prepared" in log.read_text()
    assert files_at(repo, "main") == {"README.md", "ok.txt", "user.txt"}
    assert git(repo, "status", "--porcelain") == ""


async def test_blocked_landing_is_retried_without_a_recheck(repo: Path, tmp_path: Path) -> None:
    branch_with(repo, "task-1", {"ok.txt": "task\n"})
    (repo / "ok.txt").write_text("user's untracked file\n")
    gr = GitRepo(repo)
    result = await gated_merge(gr, "task-1", "main", "m", GREEN_CHECK, tmp_path / "s", tmp_path / "t.log", 30)
    assert result.kind == "blocked" and result.paths == ("ok.txt",)
    assert (repo / "ok.txt").read_text() == "user's untracked file\n"
    (repo / "ok.txt").unlink()
    assert result.prepared is not None
    landed = gr.land_merge(result.prepared)
    assert landed.status == "merged" and git(repo, "rev-parse", "main") == result.prepared.commit


async def test_conflict_runs_no_check(repo: Path, tmp_path: Path) -> None:
    branch_with(repo, "task-1", {"README.md": "task\n"})
    user_commit(repo, "README.md")
    log = tmp_path / "t.log"
    result = await gated_merge(GitRepo(repo), "task-1", "main", "m", GREEN_CHECK, tmp_path / "s", log, 30)
    assert result.kind == "conflict" and result.paths == ("README.md",)
    assert result.checks_run == 0 and not log.exists()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sets(st.sampled_from(["x", "y", "BAD", "ok1", "ok2"]), min_size=1, max_size=2), st.booleans()
        ),
        min_size=1,
        max_size=4,
    )
)
def test_main_only_ever_points_at_commits_that_passed(tasks: list[tuple[set[str], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root / "repo")
        initial = git(repo, "rev-parse", "main")
        for n, (files, _) in enumerate(tasks):
            branch_with(repo, f"task-{n}", {name: "1\n" for name in files})
        gr, log = GitRepo(repo), root / "t.log"
        user_commits: set[str] = set()
        expected_files = {"README.md"}

        async def run_all() -> list[str]:
            statuses = []
            for n, (_files, user_interferes) in enumerate(tasks):
                calls: list[int] = []

                def interfere(
                    prepared: PreparedMerge, n: int = n, on: bool = user_interferes, calls: list[int] = calls
                ) -> None:
                    if on and not calls:
                        calls.append(1)
                        user_commits.add(user_commit(repo, f"user-{n}"))

                result = await gated_merge(
                    gr,
                    f"task-{n}",
                    "main",
                    f"merge {n}",
                    GREEN_CHECK,
                    root / "s",
                    log,
                    30,
                    on_check=interfere,
                )
                statuses.append(result.kind)
            return statuses

        statuses = asyncio.run(run_all())
        for n, (files, interferes) in enumerate(tasks):
            if interferes:
                expected_files.add(f"user-{n}")
            green = is_green(expected_files | files)
            assert statuses[n] == ("merged" if green else "check_failed")
            if green:
                expected_files |= files
        assert files_at(repo, "main") == expected_files
        passed, failed = checked_shas(log)
        ever = set(git(repo, "reflog", "show", "--format=%H", "refs/heads/main").split())
        assert ever <= {initial} | user_commits | passed
        assert not ever & failed
        first_parents = git(repo, "rev-list", "--first-parent", "main").split()
        assert all(is_green(files_at(repo, sha)) for sha in first_parents)
        assert git(repo, "status", "--porcelain") == ""


# ---------------------------------------------------------------- benchmark smoke


def test_conflict_check_bench_quick_mode_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "conflict_check.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    pattern = r"conflict check: tuiorch \d+\.\d+ ms  git merge-tree \d+\.\d+ ms  ratio \d+\.\dx"
    assert len(re.findall(pattern, done.stdout)) == 2  # clean and conflicting variants
