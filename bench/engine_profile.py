"""Where a headless run's time goes: every engine function timed, on every thread, per task.

    python bench/engine_profile.py                         # 20 tasks, 4 workers, 200 files, on tmpfs
    python bench/engine_profile.py --files 2000 --top 30
    python bench/engine_profile.py --quick                 # smoke mode, a few seconds

The run is throughput.py's tuiorch arm (same repo, agent, config), with the functions of the engine's git,
checkout, state, stage, agent, engine and orchestrator modules (and the CLI's pre-flight) wrapped in timers, and
every `subprocess.run` counted by git subcommand. Times are inclusive wall time per call, measured on the
thread that made the call: a function that waits for a lock or a thread counts the wait. A sampling
profiler of the main thread (pyinstrument, throughput.py --profile) cannot see the git work, which runs in
worker threads; this can. The wrappers cost about a microsecond a call, so totals are a little high.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import pkgutil
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import throughput
from common import BenchError, generate_repo

#: Engine modules whose functions and methods are timed (a prefix takes the whole package).
TIMED = (
    "tuiorch.orchestrator",
    "tuiorch.engine",
    "tuiorch.gitops",
    "tuiorch.git",
    "tuiorch.checkout",
    "tuiorch.state",
    "tuiorch.steps",
    "tuiorch.queue",
    "tuiorch.agent",
    "tuiorch.runners",
    "tuiorch.cli.preflight",
    "tuiorch.gate",
)
STARTUP_LINES = 12
QUICK = {"tasks": 4, "workers": 2, "files": 50}


# ---------------------------------------------------------------------------------------------------------
# Inside the profiled process


class Timings:
    """Calls recorded as (name, start, end) in seconds since the process started timing."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.calls: list[tuple[str, float, float]] = []
        self.marks: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.start

    def add(self, name: str, began: float) -> None:
        with self._lock:
            self.calls.append((name, began, self.now()))

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                began = self.now()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.add(name, began)

            return timed_async

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = self.now()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, began)

        return timed


def _modules() -> list[str]:
    import tuiorch

    names = [info.name for info in pkgutil.walk_packages(tuiorch.__path__, "tuiorch.")]
    return [name for name in names if any(name == p or name.startswith(p + ".") for p in TIMED)]


def _instrument(timings: Timings) -> None:
    """Replace each timed function, in its module and wherever another module imported it by name."""
    replaced: dict[int, Callable[..., Any]] = {}
    modules = []
    for module_name in _modules():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # an optional extra (the Ray runner) that is not installed
        modules.append(module)
        short = module_name.removeprefix("tuiorch.")
        for attr, value in list(vars(module).items()):
            if getattr(value, "__module__", None) != module_name:
                continue
            if inspect.isclass(value):
                for method, function in list(vars(value).items()):
                    if inspect.isfunction(function) and not (
                        method.startswith("__") and method != "__init__"
                    ):
                        setattr(value, method, timings.wrap(f"{short}.{value.__name__}.{method}", function))
            elif inspect.isfunction(value):
                replaced[id(value)] = timings.wrap(f"{short}.{attr}", value)
                setattr(module, attr, replaced[id(value)])
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("tuiorch"):
            for attr, value in list(vars(module).items()):
                if id(value) in replaced:
                    setattr(module, attr, replaced[id(value)])


def _count_processes(timings: Timings) -> None:
    run = subprocess.run

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        argv = list(args[0] if args else kwargs.get("args", []))
        began = timings.now()
        try:
            return run(*args, **kwargs)
        finally:
            timings.add("subprocess " + _process_name(argv), began)

    subprocess.run = timed_run  # type: ignore[assignment]
    spawn = asyncio.create_subprocess_exec

    async def marked_spawn(*args: Any, **kwargs: Any) -> Any:
        timings.marks.append(("agent started", timings.now()))
        return await spawn(*args, **kwargs)

    asyncio.create_subprocess_exec = marked_spawn  # type: ignore[assignment]


def _process_name(argv: list[Any]) -> str:
    words = [str(word) for word in argv]
    if words and Path(words[0]).name == "git":
        rest = [w for w in words[1:] if not w.startswith("-")]
        # Skip `-C <dir>` and `-c key=value` to name the subcommand.
        for index, word in enumerate(words[1:], 1):
            if word in ("-C", "-c"):
                rest = [w for w in words[index + 2 :] if not w.startswith("-")]
        return "git " + (rest[0] if rest else "")
    return Path(words[0]).name if words else "?"


def profile_inside(out: Path) -> int:
    """Run `tuiorch run --headless --json` in the current folder, timed; write the timings to `out`."""
    timings = Timings()
    from tuiorch.cli import entry

    imported = timings.now()
    timings.marks.append(("imports done", imported))
    _instrument(timings)
    _count_processes(timings)
    # The clock leaves out the time spent wrapping functions: as if the run went on right after its imports.
    timings.start = time.perf_counter() - imported
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = entry.main(["run", "--headless", "--json"])
        finally:
            sys.stdout = stdout
    timings.marks.append(("run ended", timings.now()))
    out.write_text(json.dumps({"calls": timings.calls, "marks": timings.marks}), encoding="utf-8")
    return code


# ---------------------------------------------------------------------------------------------------------
# The driver


def summarize(data: dict[str, Any], tasks: int, top: int) -> list[str]:
    marks: dict[str, list[float]] = defaultdict(list)
    for name, at in data["marks"]:
        marks[name].append(at)
    lines = [
        f"imports {marks['imports done'][0] * 1000:.0f} ms; first agent started at "
        f"{min(marks['agent started'], default=0) * 1000:.0f} ms; run ended at {marks['run ended'][0] * 1000:.0f} ms "
        f"(from the start of the timed process)"
    ]
    durations: dict[str, list[float]] = defaultdict(list)
    for name, began, ended in data["calls"]:
        durations[name].append((ended - began) * 1000)
    first_agent = min(marks["agent started"], default=0)
    lines.append("before the first agent started (start-up), the longest calls:")
    early = sorted((c for c in data["calls"] if c[2] <= first_agent), key=lambda c: c[1] - c[2])
    for name, began, ended in early[:STARTUP_LINES]:
        lines.append(
            f"  {began * 1000:7.1f} -> {ended * 1000:7.1f} ms  {(ended - began) * 1000:6.1f} ms  {name}"
        )
    lines.append(f"{'ms/task':>8} {'calls':>6} {'median ms':>9}  function (inclusive wall time, all threads)")
    ranked = sorted(durations.items(), key=lambda item: -sum(item[1]))
    for name, values in ranked[:top]:
        lines.append(f"{sum(values) / tasks:8.1f} {len(values):6d} {statistics.median(values):9.2f}  {name}")
    return lines


def run_profiled(
    files: int, tasks: int, workers: int, *, tmpfs: bool, keep: bool, top: int, confined: bool = False
) -> list[str]:
    parent = throughput.TMPFS if tmpfs else "/tmp"
    with common.work_dir(f"tuiorch-profile-{files}-", keep=keep, parent=parent) as base:
        agent = common.write_agent(base)
        repo = base / "repo"
        generate_repo(repo, files)
        (repo / "tuiorch.toml").write_text(throughput.tuiorch_toml(workers, agent, confined=confined), encoding="utf-8")
        (repo / "TASKS.md").write_text(throughput.tasks_md(tasks), encoding="utf-8")
        out = base / "timings.json"
        env = common.bench_env()
        if tmpfs:
            env["TMPDIR"] = throughput.TMPFS
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--inside", str(out)],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            raise BenchError(f"the profiled run exited {done.returncode}: {done.stderr[-2000:]}")
        merges = common.two_parent_merges(repo, common.git(repo, "rev-list", "--max-parents=0", "main"))
        if merges != tasks:
            raise BenchError(f"expected {tasks} two-parent merges on main, found {merges}")
        where = "tmpfs" if tmpfs else parent
        header = f"files={files} tasks={tasks} workers={workers} ({where}, agents {'' if confined else 'un'}confined)"
        return [header, *summarize(json.loads(out.read_text(encoding="utf-8")), tasks, top)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Where a headless tuiorch run's time goes, per task.")
    parser.add_argument("--tasks", type=int, default=20, help="tasks (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="workers (default 4)")
    parser.add_argument("--files", type=int, default=200, help="files in the generated repo (default 200)")
    parser.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    parser.add_argument("--disk", action="store_true", help="on /tmp instead of tmpfs")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 4 tasks, 2 workers, 50 files")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--confined", action="store_true", help="agents in tuiorch's sandbox (throughput.py --confined)")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside is not None:
        return profile_inside(args.inside)
    if args.quick:
        args.tasks, args.workers, args.files = QUICK["tasks"], QUICK["workers"], QUICK["files"]
    if min(args.tasks, args.workers, args.files) < 1:
        parser.error("--tasks, --workers and --files must be at least 1")
    tmpfs = not args.disk and os.access(throughput.TMPFS, os.W_OK)
    common.compile_tuiorch()
    try:
        lines = run_profiled(
            args.files, args.tasks, args.workers, tmpfs=tmpfs, keep=args.keep, top=args.top, confined=args.confined
        )
    except BenchError as exc:
        print(f"engine_profile: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
