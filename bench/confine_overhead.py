"""What confining an agent costs per attempt: its private repository, bubblewrap's start, and bringing
its commits back, against starting the same program unconfined in a plain worktree.

    python bench/confine_overhead.py [--rounds 20] [--files 2000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tuiorch.confine.bwrap import bubblewrap_problem
from tuiorch.confine.sandbox import Sandbox

COMMIT = "echo work > work.txt && git add work.txt && git -c user.name=b -c user.email=b@b commit -qm work"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _repo(root: Path, files: int) -> tuple[Path, Path]:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for i in range(files):
        (repo / f"f{i}.txt").write_text(f"{i}\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init")
    worktree = root / "wt"
    _git(repo, "worktree", "add", "-q", str(worktree), "-b", "task-1")
    return repo, worktree


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms, best {min(samples) * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    if problem := bubblewrap_problem():
        print(f"skipped: {problem}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        repo, worktree = _repo(Path(tmp), args.files)
        sandbox = Sandbox(preset="demo")
        plain, start, collect_empty, full = [], [], [], []
        for _ in range(args.rounds):
            began = time.perf_counter()
            subprocess.run(["true"], cwd=worktree, check=True)
            plain.append(time.perf_counter() - began)

            began = time.perf_counter()
            run = sandbox.enter(worktree, "task-1", "main", "1", ["true"], {})
            subprocess.run(run.argv, check=True)
            start.append(time.perf_counter() - began)
            began = time.perf_counter()
            run.collect("1")
            collect_empty.append(time.perf_counter() - began)

            began = time.perf_counter()
            run = sandbox.enter(worktree, "task-1", "main", "1", ["sh", "-c", COMMIT], {})
            subprocess.run(run.argv, check=True)
            run.collect("1")
            full.append(time.perf_counter() - began)
            _git(worktree, "reset", "-q", "--hard", "main")
            _git(repo, "update-ref", "refs/heads/task-1", "main")
            _git(worktree, "reset", "-q", "--hard", "main")
        print(f"{args.files} files, {args.rounds} rounds")
        print(f"start unconfined (true):                   {_ms(plain)}")
        print(f"start confined (repository + bwrap, true): {_ms(start)}")
        print(f"collect, nothing committed:                {_ms(collect_empty)}")
        print(f"confined run with one commit, collected:   {_ms(full)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
