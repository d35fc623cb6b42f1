"""Helpers shared by the benchmark scripts: temp dirs, a fast generated repo, the bench agent, timing.

The scripts import this as `common` (they run as `python bench/<name>.py`, so bench/ is on sys.path).
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The checkout these scripts belong to; put first on PYTHONPATH so that checkout's tuiorch is measured.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

BENCH_IDENTITY = ("tuiorch bench", "bench@tuiorch.invalid")
#: Files per generated directory: keeps directories small, like a real tree.
FILES_PER_DIR = 100
#: A fixed date makes the generated repo (and its commit ids) identical on every run.
FIXED_DATE = "1700000000 +0000"

# The agent both arms run: writes one file named after its branch and commits it. It reads the branch
# from the worktree's HEAD file rather than spawning git, so the only git work it does is add + commit.
AGENT_SCRIPT = '''\
"""Bench agent: write one file named after the checked-out branch, then git add + git commit."""
import os
import subprocess
import sys
from pathlib import Path

worktree = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
dot_git = worktree / ".git"
if dot_git.is_file():
    git_dir = Path(dot_git.read_text().split(":", 1)[1].strip())
    git_dir = git_dir if git_dir.is_absolute() else (worktree / git_dir).resolve()
else:
    git_dir = dot_git
head = (git_dir / "HEAD").read_text().strip()
branch = head.removeprefix("ref: refs/heads/")
target = worktree / "bench-output" / f"{branch}.txt"
target.parent.mkdir(exist_ok=True)
target.write_text(f"written by the bench agent on {branch}\\n")
env = dict(os.environ, GIT_AUTHOR_NAME="bench agent", GIT_AUTHOR_EMAIL="agent@bench.invalid",
           GIT_COMMITTER_NAME="bench agent", GIT_COMMITTER_EMAIL="agent@bench.invalid")
subprocess.run(["git", "add", "--", str(target)], cwd=worktree, check=True, env=env)
subprocess.run(["git", "commit", "-q", "-m", f"bench: {branch}"], cwd=worktree, check=True, env=env)
print(f"committed {target.name}")
'''


class BenchError(Exception):
    """A benchmark arm did not do what it should; str() says what, for the user."""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the git CLI; raise BenchError with git's own message on failure."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise BenchError(
            f"git {' '.join(args)} (in {cwd}) failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout.strip()


def bench_env() -> dict[str, str]:
    """The environment for every process a bench starts: this checkout's tuiorch, an instant demo agent."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env["TUIORCH_DEMO_DELAY"] = "0"
    return env


def compile_tuiorch() -> None:
    """Write the bytecode of this checkout's tuiorch, as `pip install` does when it installs a package.

    With PYTHONDONTWRITEBYTECODE set (as in some shells and CI images) a checkout never gets its .pyc
    files, so every `python -m tuiorch` would compile the whole package again (~100 ms here) and a bench
    would time the compiler instead of tuiorch. The files go to the git-ignored __pycache__ folders.
    """
    compileall.compile_dir(str(PROJECT_ROOT / "tuiorch"), quiet=1)


@contextmanager
def work_dir(prefix: str, *, keep: bool = False, parent: str = "/tmp") -> Iterator[Path]:
    """A fresh directory under `parent` (/tmp is on disk here, not tmpfs; see README), removed afterwards
    unless keep."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def generated_file_path(index: int) -> str:
    return f"src/d{index // FILES_PER_DIR:04d}/f{index:06d}.txt"


def _fast_import_stream(files: int) -> bytes:
    """One commit on main holding `files` small files, as a git fast-import stream (blobs inline)."""
    name, email = BENCH_IDENTITY
    parts = [
        b"commit refs/heads/main\n",
        f"author {name} <{email}> {FIXED_DATE}\ncommitter {name} <{email}> {FIXED_DATE}\n".encode(),
    ]
    message = f"generated repo with {files} files\n".encode()
    parts.append(b"data %d\n%s" % (len(message), message))
    readme = b"# generated for tuiorch benchmarks\n"
    parts.append(b"M 100644 inline README.md\ndata %d\n%s\n" % (len(readme), readme))
    for index in range(files):
        body = f"file {index}\nline two of file {index}\n".encode()
        parts.append(
            b"M 100644 inline %s\ndata %d\n%s\n" % (generated_file_path(index).encode(), len(body), body)
        )
    parts.append(b"\n")
    return b"".join(parts)


def generate_repo(path: Path, files: int) -> str:
    """Make `path` a repo whose main has one commit of `files` files (plus README.md), checked out.

    The same `files` gives the same commit id every time, so two arms get identical repos.
    Returns the initial commit's sha.
    """
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    name, email = BENCH_IDENTITY
    git(path, "config", "user.name", name)
    git(path, "config", "user.email", email)
    git(path, "config", "commit.gpgsign", "false")
    done = subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input=_fast_import_stream(files), capture_output=True
    )
    if done.returncode != 0:
        raise BenchError(f"git fast-import failed: {done.stderr.decode(errors='replace').strip()}")
    # fast-import fills the object store only; this writes the index and the working files.
    git(path, "reset", "-q", "--hard", "main")
    return git(path, "rev-parse", "main")


def write_agent(directory: Path) -> Path:
    path = directory / "bench_agent.py"
    path.write_text(AGENT_SCRIPT, encoding="utf-8")
    return path


def two_parent_merges(repo: Path, since: str, branch: str = "main") -> int:
    """How many commits with exactly two parents `branch` gained after `since`."""
    count = git(repo, "rev-list", "--count", "--min-parents=2", "--max-parents=2", f"{since}..{branch}")
    return int(count)


def median_time(action: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def format_seconds(seconds: float) -> str:
    """1.234 -> "1.23s", 0.0123 -> "12.3ms", 0.0000123 -> "12.3us"."""
    if seconds >= 1:
        return f"{seconds:.2f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds * 1e6:.1f}us"


def parse_int_list(text: str) -> list[int]:
    """ "200,2000,20000" -> [200, 2000, 20000]; raises ValueError on anything else."""
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(value < 0 for value in values):
        raise ValueError(f"expected comma-separated non-negative numbers, got {text!r}")
    return values
