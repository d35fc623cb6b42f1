"""The cost of committing an agent's leftovers with git itself (git add -A + git commit) instead of libgit2.

git's own commit is what makes the repository's hooks, filters (Git LFS), identity and signing apply; this
prints what that costs per task. Baseline, measured in the same run on the same worktree: libgit2 staging
the status and writing the commit (tuiorch's former path, which bypassed all of those).

    python bench/leftovers.py                 # 2,000 files, 5 changed + 1 new per commit, median of 21
    python bench/leftovers.py --files 20000 --changed 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
from common import BENCH_IDENTITY, BenchError, generate_repo, generated_file_path, git
from pygit2.enums import FileStatus

from tuiorch.git import GitRepo


def libgit2_commit(worktree: Path, message: str) -> str | None:
    """The baseline: stage `status()` into the index and write the commit with libgit2."""
    repo = pygit2.Repository(str(worktree))
    changes = repo.status(untracked_files="all")
    if not changes:
        return None
    index = repo.index
    index.read()
    for rel, flags in changes.items():
        if flags & FileStatus.WT_DELETED:
            index.remove(rel)
        elif not flags & FileStatus.IGNORED:
            index.add(rel)
    index.write()
    sig = pygit2.Signature(*BENCH_IDENTITY)
    return str(repo.create_commit("HEAD", sig, sig, message, index.write_tree(), [repo.head.target]))


def timed(worktree: Path, changed: int, commit: Callable[[Path, str], str | None], runs: int) -> float:
    """Median ms of `commit` over `runs` rounds, each after editing `changed` files and adding one."""
    samples = []
    for round_ in range(runs + 1):
        for i in range(changed):
            (worktree / generated_file_path(i)).write_text(f"round {round_} {commit.__name__}\n")
        (worktree / "new" / f"{commit.__name__}-{round_}.txt").parent.mkdir(exist_ok=True)
        (worktree / "new" / f"{commit.__name__}-{round_}.txt").write_text("new\n")
        started = time.perf_counter()
        if commit(worktree, f"round {round_}") is None:
            raise BenchError(f"{commit.__name__} committed nothing")
        if round_:  # the first round warms caches
            samples.append((time.perf_counter() - started) * 1000)
    if git(worktree, "status", "--porcelain"):
        raise BenchError(f"{commit.__name__} left changes uncommitted")
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=2000, help="files in the generated repo (default 2000)")
    parser.add_argument("--changed", type=int, default=5, help="files edited per commit (default 5), plus one new")
    parser.add_argument("--runs", type=int, default=21, help="timed commits per arm; the median is shown")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 200 files, 3 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.runs = 200, 3
    if min(args.files, args.changed, args.runs) < 1 or args.changed > args.files:
        parser.error("--files, --changed and --runs must be positive, --changed at most --files")
    try:
        with tempfile.TemporaryDirectory(prefix="tuiorch-bench-") as tmp:
            root = Path(tmp) / "repo"
            generate_repo(root, args.files)
            gr = GitRepo(root)
            worktree = Path(tmp) / "wt"
            gr.prepare_worktree(worktree, "task-1", "main")

            def tuiorch_git(path: Path, message: str) -> str | None:
                return gr.commit_leftovers(path, message, "task-1")

            git_ms = timed(worktree, args.changed, tuiorch_git, args.runs)
            libgit2_ms = timed(worktree, args.changed, libgit2_commit, args.runs)
            started = time.perf_counter()
            for _ in range(args.runs):
                gr.commit_leftovers(worktree, "clean", "task-1")
            clean_ms = (time.perf_counter() - started) * 1000 / args.runs
            print(
                f"leftover commit ({args.files} files, {args.changed} edited + 1 new; median of {args.runs}): "
                f"git add -A + git commit {git_ms:.1f} ms  libgit2 {libgit2_ms:.1f} ms  "
                f"ratio {git_ms / libgit2_ms:.2f}x  (clean worktree: {clean_ms:.1f} ms)"
            )
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
