"""Throughput: tuiorch headless against the seed's manual git-CLI workflow, same tasks, same agent.

    python bench/throughput.py                      # N=20 tasks, W=4 workers, F=2000 files
    python bench/throughput.py --files-list 200,2000,20000
    python bench/throughput.py --quick              # smoke mode, a few seconds
    python bench/throughput.py --tmpfs --rounds 3 --files-list 200,2000   # the throughput targets

Each size runs both arms on identical fresh generated repos:
  tuiorch  `python -m tuiorch run --headless --json` with a custom agent preset, timed end to end;
  git-cli  a pool of W threads doing, per task, `git worktree add -b task-N`, the agent, then under a lock
           `git merge --no-ff`, and `git worktree remove` + `git branch -d` (the seed workflow's commands).
The agent (common.AGENT_SCRIPT) writes one file and commits; it runs unconfined in both arms unless
--confined (then tuiorch's sandbox applies, which the git-CLI arm has no counterpart of).
speedup = git-cli time / tuiorch time.
A third timing, the agents alone (the same agents, pool and repo, in worktrees made beforehand, with no
merging), is the floor no orchestration can go below: git-cli time / agents-alone time is the most any
orchestrator could reach against the git-CLI workflow on this machine, printed as the ceiling.
With --rounds R both arms run R times per size on fresh repos, interleaved, and the medians are compared;
--tmpfs puts the repos, worktrees and TMPDIR of both arms on /dev/shm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import common
from common import BenchError, bench_env, format_seconds, generate_repo, git, two_parent_merges

QUICK = {"tasks": 4, "workers": 2, "files": 50}


@dataclass(frozen=True)
class ArmResult:
    wall: float  # seconds, end to end
    first_merge: float | None  # seconds from start to the first merge landing on main
    retries: int = 0  # git-cli: commands retried after colliding with another thread's git


def tasks_md(count: int) -> str:
    """`count` independent tasks (no touches, no deps): the pool is never starved by the scheduler."""
    blocks = ["# Bench tasks\n"]
    for number in range(1, count + 1):
        blocks.append(f"## Task {number}: bench task {number}\n\nWrite one file and commit it.\n")
    return "\n".join(blocks)


def tuiorch_toml(workers: int, agent: Path, *, confined: bool = False) -> str:
    """A custom preset running the bench agent; everything else at its default, except that the agents
    run unconfined (as the git-CLI arm's do) unless `confined`: then tuiorch's default applies (bubblewrap
    where it works)."""
    command = json.dumps([sys.executable, str(agent), "{worktree}"])
    confine = "" if confined else 'confine = "off"\n'
    return (
        'base = "main"\n'
        f"workers = {workers}\n"
        'tasks = "TASKS.md"\n'
        'worktrees = "../{repo}-worktrees"\n'
        'branch = "task-{id}"\n\n'
        "[agent]\n"
        'preset = "custom"\n'
        f"command = {command}\n"
        f"{confine}"
    )


def run_tuiorch(
    repo: Path, tasks: int, workers: int, agent: Path, *, profile_to: Path | None = None, confined: bool = False
) -> ArmResult:
    """Time `tuiorch run --headless --json` in `repo` and check every task merged."""
    (repo / "tuiorch.toml").write_text(tuiorch_toml(workers, agent, confined=confined), encoding="utf-8")
    (repo / "TASKS.md").write_text(tasks_md(tasks), encoding="utf-8")
    initial = git(repo, "rev-parse", "main")
    tuiorch_args = ["-m", "tuiorch", "run", "--headless", "--json"]
    if profile_to is None:
        argv = [sys.executable, *tuiorch_args]
    else:
        argv = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile_to), *tuiorch_args]
    first_merge: float | None = None
    lines: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen(
        argv, cwd=repo, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if first_merge is None and _event_name(line) == "merged":
                    first_merge = time.perf_counter() - start
            code = proc.wait()
        except BaseException:
            # tuiorch stops its agents on SIGINT (as on Ctrl-C); the `with` then waits for it to exit.
            proc.send_signal(signal.SIGINT)
            raise
    wall = time.perf_counter() - start
    tail = "\n".join(lines[-15:])
    if code != 0:
        raise BenchError(f"tuiorch run --headless exited {code}; last output:\n{tail}")
    merges = two_parent_merges(repo, initial)
    if merges != tasks:
        raise BenchError(
            f"tuiorch: expected {tasks} two-parent merges on main, found {merges}; last output:\n{tail}"
        )
    return ArmResult(wall, first_merge)


def _event_name(line: str) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data.get("event") if isinstance(data, dict) else None


def run_git_cli(repo: Path, tasks: int, workers: int, agent: Path) -> ArmResult:
    """The seed workflow, automated as a pool of `workers` threads calling the git CLI."""
    retries: list[int] = []  # one entry per retried git command (thread-safe: list.append)
    initial = git(repo, "rev-parse", "main")
    worktrees = repo.parent / f"{repo.name}-worktrees"
    worktrees.mkdir(exist_ok=True)
    env = bench_env()
    merge_lock = threading.Lock()
    first_merge: list[float] = []
    start = time.perf_counter()

    def one_task(number: int) -> None:
        branch = f"task-{number}"
        path = worktrees / branch
        _add_worktree(repo, env, retries, branch, path)
        run_agent(agent, path, env)
        with merge_lock:  # one merge at a time into the main checkout, as the seed's single orchestrator
            git(repo, "merge", "--no-ff", "-q", "-m", f"feat: bench task {number}", branch, env=env)
            if not first_merge:
                first_merge.append(time.perf_counter() - start)
        _git_retrying(repo, env, retries, "worktree", "remove", str(path))
        _git_retrying(repo, env, retries, "branch", "-d", "-q", branch)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(one_task, number) for number in range(1, tasks + 1)]:
            future.result()
    wall = time.perf_counter() - start
    merges = two_parent_merges(repo, initial)
    if merges != tasks:
        raise BenchError(f"git-cli: expected {tasks} two-parent merges on main, found {merges}")
    return ArmResult(wall, first_merge[0] if first_merge else None, len(retries))


def run_agent(agent: Path, worktree: Path, env: dict[str, str]) -> None:
    """The bench agent in `worktree`, as both arms and the agents-alone timing run it; BenchError if it fails."""
    done = subprocess.run([sys.executable, str(agent), str(worktree)], cwd=worktree, env=env, capture_output=True)
    if done.returncode != 0:
        raise BenchError(f"bench agent failed in {worktree}: {done.stderr.decode(errors='replace')}")


def run_agents_alone(repo: Path, tasks: int, workers: int, agent: Path) -> ArmResult:
    """Only the agents: each task's worktree made beforehand (not timed), then the agents run by a pool of
    `workers` threads, as in the other arms, and nothing is merged."""
    worktrees = repo.parent / f"{repo.name}-alone"
    env = bench_env()
    paths = []
    for number in range(1, tasks + 1):
        path = worktrees / f"task-{number}"
        git(repo, "worktree", "add", "-q", "-b", f"task-{number}", str(path), env=env)
        paths.append(path)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda path: run_agent(agent, path, env), paths))
    return ArmResult(time.perf_counter() - start, None)


_TRANSIENT = (".lock", "/worktrees/")


def _git_retrying(repo: Path, env: dict[str, str], retries: list[int], *args: str, attempts: int = 20) -> str:
    """git, retried while another thread's git holds a lock file or has a worktree half made: parallel
    git commands on one repository do collide (`git branch -d` reads every worktree's admin dir)."""
    for attempt in range(attempts):
        try:
            return git(repo, *args, env=env)
        except BenchError as exc:
            if not any(mark in str(exc) for mark in _TRANSIENT) or attempt == attempts - 1:
                raise
            retries.append(attempt)
            time.sleep(0.02)
    raise AssertionError("unreachable")


def _add_worktree(repo: Path, env: dict[str, str], retries: list[int], branch: str, path: Path) -> None:
    """`git worktree add -b`, retried like _git_retrying; a failed attempt may have made the branch or part
    of the worktree already, so those are removed before the next one."""
    for attempt in range(20):
        try:
            git(repo, "worktree", "add", "-q", "-b", branch, str(path), env=env)
            return
        except BenchError as exc:
            if not any(mark in str(exc) for mark in _TRANSIENT) or attempt == 19:
                raise
            retries.append(attempt)
            time.sleep(0.02)
            shutil.rmtree(path, ignore_errors=True)
            _git_retrying(repo, env, retries, "worktree", "prune")
            if git(repo, "branch", "--list", branch, env=env):
                _git_retrying(repo, env, retries, "branch", "-D", "-q", branch)


def profiler_available() -> bool:
    done = subprocess.run([sys.executable, "-c", "import pyinstrument"], capture_output=True)
    return done.returncode == 0


@dataclass(frozen=True)
class Place:
    """Where both arms' repos, worktrees and temp files go."""

    parent: str  # the folder the bench's work dir is made in
    tmpfs: bool
    #: tuiorch's agents in its sandbox (its default where bubblewrap works); the git-CLI arm has none.
    confined: bool = False


TMPFS = "/dev/shm"


def bench_size(
    files: int, tasks: int, workers: int, *, keep: bool, profile: bool, rounds: int, place: Place
) -> float:
    """Run both arms `rounds` times for one repo size, interleaved (the arm that goes first alternates),
    each on fresh identical repos; print the medians and return the speedup of the medians."""
    results: dict[str, list[ArmResult]] = {"tuiorch": [], "git-cli": [], "agents": []}
    with common.work_dir(f"tuiorch-bench-{files}-", keep=keep, parent=place.parent) as base:
        agent = common.write_agent(base)
        setup = 0.0
        for number in range(rounds):
            folder = base / f"round-{number + 1}"
            start = time.perf_counter()
            tuiorch_repo, cli_repo = folder / "tuiorch" / "repo", folder / "git-cli" / "repo"
            alone_repo = folder / "agents" / "repo"
            if len({generate_repo(repo, files) for repo in (tuiorch_repo, cli_repo, alone_repo)}) != 1:
                raise BenchError("the generated repos differ")
            setup += time.perf_counter() - start
            arms = [
                ("tuiorch", lambda repo=tuiorch_repo: run_tuiorch(repo, tasks, workers, agent, confined=place.confined)),
                ("git-cli", lambda repo=cli_repo: run_git_cli(repo, tasks, workers, agent)),
                ("agents", lambda repo=alone_repo: run_agents_alone(repo, tasks, workers, agent)),
            ]
            for name, run in arms if number % 2 == 0 else arms[::-1]:
                results[name].append(run())
                # Progress on stderr: the git-CLI arm can take minutes on a big repo.
                print(f"  (round {number + 1}: {name} {results[name][-1].wall:.2f}s)", file=sys.stderr)
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)  # on tmpfs the repos take memory
        speedup = _print_size(files, tasks, workers, rounds, place, results, setup)
        if profile:
            _profile(base, files, tasks, workers, agent, confined=place.confined)
        sys.stdout.flush()
        return speedup


def _print_size(
    files: int,
    tasks: int,
    workers: int,
    rounds: int,
    place: Place,
    results: dict[str, list[ArmResult]],
    setup: float,
) -> float:
    tuiorch_wall = statistics.median(r.wall for r in results["tuiorch"])
    cli_wall = statistics.median(r.wall for r in results["git-cli"])
    speedup = cli_wall / tuiorch_wall
    # The plain one-round form is the line other tools read: it stays as it was.
    modes = (
        (["tmpfs"] if place.tmpfs else [])
        + ([f"median of {rounds} interleaved"] if rounds > 1 else [])
        + (["tuiorch's agents confined"] if place.confined else [])
    )
    mode = f" ({', '.join(modes)})" if modes else ""
    print(
        f"files={files} tasks={tasks} workers={workers}{mode}  "
        f"tuiorch {tuiorch_wall:.2f}s  git-cli {cli_wall:.2f}s  speedup {speedup:.2f}x"
    )
    alone = statistics.median(r.wall for r in results["agents"])
    print(
        f"  agents alone {alone:.2f}s (the floor: no orchestration goes below it); "
        f"ceiling for any orchestrator here: git-cli / agents alone = {cli_wall / alone:.2f}x"
    )
    if rounds > 1:
        for name, arm in results.items():
            print(f"  {name:<8} rounds: " + "  ".join(f"{r.wall:.2f}s" for r in arm))
    print(
        f"  first merge: tuiorch {_median_first(results['tuiorch'])}  git-cli {_median_first(results['git-cli'])}"
        f"  git-cli retries {sum(r.retries for r in results['git-cli'])}"
        f"  (repo generation {setup:.2f}s, not timed)"
    )
    return speedup


def _median_first(results: list[ArmResult]) -> str:
    firsts = [r.first_merge for r in results if r.first_merge is not None]
    return _maybe(statistics.median(firsts) if firsts else None)


def _profile(base: Path, files: int, tasks: int, workers: int, agent: Path, *, confined: bool) -> None:
    """One more tuiorch run, on another fresh copy, under pyinstrument (not counted in the figures)."""
    if not profiler_available():
        print("  --profile: pyinstrument is not installed (pip install pyinstrument); skipped")
        return
    repo = base / "profiled" / "repo"
    generate_repo(repo, files)
    report = Path(f"/tmp/tuiorch-bench-profile-{files}.txt")
    result = run_tuiorch(repo, tasks, workers, agent, profile_to=report, confined=confined)
    print(f"  profiled tuiorch run {result.wall:.2f}s; pyinstrument report: {report}")


def _maybe(seconds: float | None) -> str:
    return "-" if seconds is None else format_seconds(seconds)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="tuiorch headless vs the seed's git-CLI workflow: wall time for N trivial tasks.",
    )
    parser.add_argument("--tasks", type=int, default=20, help="tasks per run (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="parallel workers in both arms (default 4)")
    parser.add_argument("--files", type=int, default=2000, help="files in the generated repo (default 2000)")
    parser.add_argument("--files-list", help="several repo sizes in one go, e.g. 200,2000,20000")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 4 tasks, 2 workers, 50 files")
    parser.add_argument(
        "--profile", action="store_true", help="also run tuiorch under pyinstrument, if installed"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs to look at afterwards")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds per size, arms interleaved; the median is reported (default 1)",
    )
    parser.add_argument(
        "--tmpfs",
        action="store_true",
        help=f"repos, worktrees and TMPDIR of both arms on tmpfs ({TMPFS}), so disk noise doesn't hide the "
        "orchestration's own cost",
    )
    parser.add_argument(
        "--confined",
        action="store_true",
        help="run tuiorch's agents in its sandbox (its default where bubblewrap works); without it both arms' "
        "agents run unconfined, so the arms compare the orchestration alone",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.workers, args.files = QUICK["tasks"], QUICK["workers"], QUICK["files"]
    try:
        sizes = common.parse_int_list(args.files_list) if args.files_list else [args.files]
    except ValueError as exc:
        parser.error(f"--files-list: {exc}")
    if args.tasks < 1 or args.workers < 1 or args.rounds < 1:
        parser.error("--tasks, --workers and --rounds must be at least 1")
    place = Place("/tmp", tmpfs=False, confined=args.confined)
    if args.tmpfs:
        if not Path(TMPFS).is_dir() or not os.access(TMPFS, os.W_OK):
            print(f"throughput: --tmpfs needs a writable {TMPFS}", file=sys.stderr)
            return 2
        place = Place(TMPFS, tmpfs=True, confined=args.confined)
        # Both arms' processes (tuiorch, git, the agent) put their temp files there too.
        os.environ["TMPDIR"] = TMPFS
    if shutil.which("git") is None:
        print("throughput: git is not on PATH", file=sys.stderr)
        return 2
    common.compile_tuiorch()
    try:
        for files in sizes:
            bench_size(
                files,
                args.tasks,
                args.workers,
                keep=args.keep,
                profile=args.profile,
                rounds=args.rounds,
                place=place,
            )
    except BenchError as exc:
        print(f"throughput: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
