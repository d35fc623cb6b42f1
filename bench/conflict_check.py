"""Cost of one predicted-conflict check: tuiorch's in-memory GitRepo.test_merge vs `git merge-tree`.

    python bench/conflict_check.py                # 2,000 files, 20 changed on the task, 20 others on main
    python bench/conflict_check.py --files 20000
    python bench/conflict_check.py --quick        # smoke mode: 200 files, a few runs, a few seconds

The orchestrator runs this check on every new commit of every running task, so its
cost is paid often. Two variants on one generated repo: "clean" (task and main change different files)
and "conflict" (the task changes the same lines of main's 20 files). tuiorch's arm calls test_merge on
an already open repository; git's arm runs `git merge-tree --write-tree --name-only` as a subprocess,
which is what a CLI-based tool would do. Both must report the same conflict paths. Median of --runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))  # measure this checkout's tuiorch

import pygit2  # noqa: E402
from pygit2.enums import FileMode  # noqa: E402

from tuiorch.git import GitRepo  # noqa: E402

FILES_PER_DIR = 100
LINES_PER_FILE = 30
#: Fixed author time: the generated repo (and its commit ids) is the same on every run.
SIGNATURE = pygit2.Signature("tuiorch bench", "bench@tuiorch.invalid", 1700000000, 0)


class BenchError(Exception):
    """An arm did not do what it should."""


def _path(n: int) -> str:
    return f"src/d{n // FILES_PER_DIR:03d}/f{n:05d}.txt"


def _content(n: int, changed_line: str | None = None) -> bytes:
    lines = [f"file {n} line {i}" for i in range(LINES_PER_FILE)]
    if changed_line is not None:
        lines[LINES_PER_FILE // 2] = changed_line
    return ("\n".join(lines) + "\n").encode()


def _commit(
    repo: pygit2.Repository, ref: str, parent: pygit2.Oid | None, files: dict[str, bytes], message: str
) -> pygit2.Oid:
    """Commit `files` on top of `parent`'s tree, in memory (no working tree writes)."""
    index = pygit2.Index()
    if parent is not None:
        index.read_tree(repo[parent].peel(pygit2.Tree))
    for rel, data in files.items():
        index.add(pygit2.IndexEntry(rel, repo.create_blob(data), FileMode.BLOB))
    tree = index.write_tree(repo)
    return repo.create_commit(ref, SIGNATURE, SIGNATURE, message, tree, [parent] if parent else [])


def generate_repo(root: Path, files: int, changed: int) -> None:
    """main: `files` files, then a commit changing `changed` of them; task branches off the first commit.

    task-clean changes `changed` other files; task-conflict changes the same line of main's files.
    """
    if files < 2 * changed:
        raise BenchError(f"--files ({files}) must be at least twice --changed ({changed})")
    repo = pygit2.init_repository(str(root), initial_head="main")
    initial = _commit(repo, "refs/heads/main", None, {_path(n): _content(n) for n in range(files)}, "initial")
    # Spread the changes over the tree, as real work touches several directories.
    step = files // (2 * changed)
    main_side = [2 * i * step for i in range(changed)]
    task_side = [(2 * i + 1) * step for i in range(changed)]
    _commit(repo, "refs/heads/main", initial, {_path(n): _content(n, "main") for n in main_side}, "main work")
    _commit(
        repo, "refs/heads/task-clean", initial, {_path(n): _content(n, "task") for n in task_side}, "task"
    )
    _commit(
        repo, "refs/heads/task-conflict", initial, {_path(n): _content(n, "task") for n in main_side}, "clash"
    )


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return env


def git_merge_tree(root: Path, branch: str, env: dict[str, str]) -> tuple[str, ...]:
    done = subprocess.run(
        ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", "main", branch],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):  # 1 means "conflicts", anything else is an error
        raise BenchError(f"git merge-tree failed ({done.returncode}): {done.stderr.strip()}")
    # First line: the tree id; then the conflicted paths (with --name-only, one each).
    return tuple(sorted(set(done.stdout.split("\n")[1:]) - {""}))


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm-up: page cache, libgit2's object cache, git's startup files
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(root: Path, branch: str, runs: int) -> tuple[float, float, tuple[str, ...]]:
    gr = GitRepo(root)
    env = _git_env()
    ours, theirs = gr.test_merge(branch, "main"), git_merge_tree(root, branch, env)
    if ours != theirs:
        raise BenchError(f"{branch}: tuiorch predicts {ours}, git merge-tree says {theirs}")
    tuiorch_ms = median_ms(lambda: gr.test_merge(branch, "main"), runs)
    git_ms = median_ms(lambda: git_merge_tree(root, branch, env), runs)
    return tuiorch_ms, git_ms, ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=2000, help="files in the generated repo (default 2000)")
    parser.add_argument("--changed", type=int, default=20, help="files changed on each side (default 20)")
    parser.add_argument("--runs", type=int, default=31, help="timed runs per arm; the median is shown")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 200 files, 5 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.runs = 200, 5
    if args.files < 1 or args.changed < 1 or args.runs < 1:
        parser.error("--files, --changed and --runs must be positive")
    try:
        with tempfile.TemporaryDirectory(prefix="tuiorch-bench-") as tmp:
            root = Path(tmp) / "repo"
            started = time.perf_counter()
            generate_repo(root, args.files, args.changed)
            print(
                f"repo: {args.files} files, {args.changed} changed on the task and {args.changed} on main "
                f"(generated in {time.perf_counter() - started:.1f} s); median of {args.runs} runs"
            )
            for variant in ("clean", "conflict"):
                tuiorch_ms, git_ms, paths = measure(root, f"task-{variant}", args.runs)
                print(
                    f"conflict check: tuiorch {tuiorch_ms:.1f} ms  git merge-tree {git_ms:.1f} ms  "
                    f"ratio {git_ms / tuiorch_ms:.1f}x  [{variant}: {len(paths)} conflicting paths]"
                )
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
