"""The TUI under an output flood: every slot's agent printing thousands of lines a second.

    python bench/ui_flood.py                  # 8 slots, 5,000 lines/s each for 10 s
    python bench/ui_flood.py --quick          # 2 slots, 1 s (the smoke test)
    python bench/ui_flood.py --slots 4 --seconds 5 --rate 2000 --profile

Runs the real app (TuiorchApp under Textual's Pilot, App.run_test) on a fresh repo with the demo agent
(directives `lines: N` and `rate: R`) and, while the agents flood, moves the queue cursor every ~100 ms
and measures key-to-screen latency: from the key event handed to the driver until the first frame the
compositor renders with the cursor on the new row. Also: the UI process's peak RSS (getrusage), and that
every task's log file holds every line the agent printed, in order. Targets (the app stays responsive):
p95 <= 50 ms, peak RSS <= 150 MB, 0 lines lost. Exit status 0 when all are met, 1 when not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import common

TARGET_P95_SECONDS = 0.050
TARGET_RSS_MB = 150.0
#: How often a key is pressed while the agents flood.
KEY_EVERY_SECONDS = 0.1
#: A key whose frame never comes counts as this late (and fails the target).
KEY_TIMEOUT_SECONDS = 2.0
SIZE = (160, 48)
LINE = re.compile(r"^demo output line (\d+) of (\d+)$")


@dataclass
class Figures:
    latencies: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    flood_seconds: float = 0.0
    lines_expected: int = 0
    lines_found: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    discarded: int = 0
    loop_lags: list[float] = field(default_factory=list)


async def measure_loop_lag(lags: list[float], period: float = 0.01) -> None:
    """How late a 10 ms sleep wakes up: what any key waits for before the app even sees it."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - before - period)


def write_project(repo: Path, slots: int, lines: int, rate: int) -> None:
    common.git(repo.parent, "init", "-q", "-b", "main", str(repo))
    for key, value in (("user.name", common.BENCH_IDENTITY[0]), ("user.email", common.BENCH_IDENTITY[1]),
                       ("commit.gpgsign", "false")):
        common.git(repo, "config", key, value)
    (repo / "tuiorch.toml").write_text(
        f'workers = {slots}\n\n[agent]\npreset = "demo"\ntimeout = "10m"\nstuck_after = "0"\nretries = 0\n'
    )
    tasks = [
        textwrap.dedent(f"""\
            ## Task {n}: Flood {n}
            lines: {lines}
            rate: {rate}

            ```write out-{n}.txt
            flooded {n}
            ```
            """)
        for n in range(1, slots + 1)
    ]
    (repo / "TASKS.md").write_text("\n".join(tasks))
    common.git(repo, "add", "-A")
    common.git(repo, "commit", "-q", "-m", "flood tasks")


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: this process (the app and the engine), not the agents.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def flood(repo: Path, slots: int) -> Figures:
    from textual import events

    from tuiorch.config import load_config
    from tuiorch.events import TaskStatus
    from tuiorch.tasks import load_tasks
    from tuiorch.ui.app import TuiorchApp
    from tuiorch.ui.widgets import QueuePane, QueueTable

    task_file = repo / "TASKS.md"
    app = TuiorchApp(repo, load_config(repo), load_tasks(task_file), task_file, watch_tasks=False)
    figures = Figures()
    #: (expected cursor row, when the key was sent, future set by the first frame that shows it)
    waiting: list[tuple[int, float, asyncio.Future[float]]] = []
    real_display = app._display

    def display(screen, renderable) -> None:  # noqa: ANN001 - Textual's private hook, wrapped
        real_display(screen, renderable)
        if renderable is None:
            return
        figures.frames += 1
        if waiting:
            row, _sent, done = waiting[0]
            table = app.query_one("#queue-table", QueueTable)
            if table.cursor_row == row and not done.done():
                done.set_result(time.perf_counter())

    app._display = display  # type: ignore[method-assign]

    def active() -> bool:
        return any(rec.status.is_active or rec.status is TaskStatus.QUEUED for rec in app.orch.records.values())

    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#queue-table", QueueTable)
        queue = app.query_one(QueuePane)
        deadline = time.monotonic() + 60
        # Measured from when every agent has started (the pool fills one worktree at a time).
        while any(rec.status is TaskStatus.QUEUED or rec.status is TaskStatus.STARTING
                  for rec in app.orch.records.values()):
            if time.monotonic() > deadline:
                raise common.BenchError(f"only {app.orch.running_count()} of {slots} agents started in 60 s")
            await pilot.pause(0.01)
        started = time.monotonic()
        lag_probe = asyncio.create_task(measure_loop_lag(figures.loop_lags))
        step = 1
        loop = asyncio.get_running_loop()
        while active():
            if table.has_focus and table.row_count > 1:
                target = table.cursor_row + step
                if not 0 <= target < table.row_count:
                    step = -step
                    target = table.cursor_row + step
                rows_before = queue.lines  # replaced (not mutated) whenever the table is rebuilt
                done: asyncio.Future[float] = loop.create_future()
                sent = time.perf_counter()
                waiting[:] = [(target, sent, done)]
                key = events.Key("down" if step > 0 else "up", None)
                key.set_sender(app)
                assert app._driver is not None
                app._driver.send_message(key)  # as Pilot.press does, without its wait for idle
                try:
                    shown = await asyncio.wait_for(asyncio.shield(done), KEY_TIMEOUT_SECONDS)
                    latency = shown - sent
                except TimeoutError:
                    latency = KEY_TIMEOUT_SECONDS
                waiting.clear()
                if queue.lines is not rows_before:
                    # A task changed state and the rows were redrawn under the key: the cursor followed its
                    # task, so the row aimed at is not the one to wait for. Not a latency; press again.
                    figures.discarded += 1
                else:
                    figures.latencies.append(latency)
            await asyncio.sleep(KEY_EVERY_SECONDS)
            if time.monotonic() - started > 600:
                raise common.BenchError("the flood did not end within 10 minutes")
        figures.flood_seconds = time.monotonic() - started
        lag_probe.cancel()
        figures.statuses = {tid: " ".join(filter(None, (rec.status.value, rec.reason)))
                            for tid, rec in app.orch.records.items()}
        figures.peak_rss_mb = peak_rss_mb()
        await app.shutdown().wait()
    return figures


def check_logs(repo: Path, slots: int, lines: int, figures: Figures) -> None:
    """Every `demo output line i of N` must be in the task's log, once, in order."""
    logs = repo / ".git" / "tuiorch" / "logs"
    figures.lines_expected = slots * lines
    for n in range(1, slots + 1):
        path = logs / f"{n}.log"
        numbers = []
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as handle:
                for text in handle:
                    if (match := LINE.match(text.rstrip("\n"))) and int(match[2]) == lines:
                        numbers.append(int(match[1]))
        figures.lines_found += len(numbers)
        if numbers != list(range(1, lines + 1)):
            first_bad = next((i for i, (a, b) in enumerate(zip(numbers, range(1, lines + 1), strict=False)) if a != b),
                             min(len(numbers), lines))
            figures.lost[str(n)] = f"{len(numbers)} of {lines} lines, first gap or disorder at line {first_bad + 1}"


def report(figures: Figures, slots: int, lines: int, rate: int, *, verbose: bool = False) -> bool:
    lat = figures.latencies
    p50 = common.percentile(lat, 0.5) if lat else float("inf")
    p95 = common.percentile(lat, 0.95) if lat else float("inf")
    worst = max(lat) if lat else float("inf")
    lost = figures.lines_expected - figures.lines_found
    ok_latency = p95 <= TARGET_P95_SECONDS
    ok_rss = figures.peak_rss_mb <= TARGET_RSS_MB
    ok_lines = lost == 0 and not figures.lost
    achieved = figures.lines_expected / figures.flood_seconds if figures.flood_seconds else 0.0

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"flood: {slots} slots x {lines:,} lines at {rate:,}/s asked; took {figures.flood_seconds:.1f}s "
          f"({achieved:,.0f} lines/s in all); {figures.frames:,} frames rendered")
    print(f"key to screen: {len(lat)} presses ({figures.discarded} discarded: rows redrawn under them)  p50 {common.format_seconds(p50)}  p95 {common.format_seconds(p95)}  "
          f"max {common.format_seconds(worst)}  (target p95 <= {TARGET_P95_SECONDS * 1e3:.0f}ms: {verdict(ok_latency)})")
    if figures.loop_lags:
        lags = figures.loop_lags
        print(f"event loop lag: p50 {common.format_seconds(common.percentile(lags, 0.5))}  "
              f"p95 {common.format_seconds(common.percentile(lags, 0.95))}  max {common.format_seconds(max(lags))}")
    print(f"peak RSS of the UI process: {figures.peak_rss_mb:.1f} MB (target <= {TARGET_RSS_MB:.0f} MB: {verdict(ok_rss)})")
    print(f"log lines: {figures.lines_found:,} of {figures.lines_expected:,} present in order, {lost:,} lost "
          f"(target 0: {verdict(ok_lines)})")
    if verbose:
        print("latencies (ms): " + " ".join(f"{value * 1e3:.0f}" for value in lat))
    for task, problem in figures.lost.items():
        print(f"  task {task}: {problem}")
    not_merged = {t: s for t, s in figures.statuses.items() if not s.startswith("merged")}
    if not_merged:
        print(f"tasks not merged: {not_merged}")
    return ok_latency and ok_rss and ok_lines and not not_merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 slots, 1 s: a smoke run")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each agent floods")
    parser.add_argument("--rate", type=int, default=5000, help="lines a second per agent")
    parser.add_argument("--verbose", action="store_true", help="print every latency")
    parser.add_argument("--keep", action="store_true", help="keep the temp repo")
    parser.add_argument("--profile", action="store_true", help="run under pyinstrument and print where time goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.slots, args.seconds = 2, 1.0
    if args.slots < 1 or args.seconds <= 0 or args.rate < 1:
        parser.error("--slots, --seconds and --rate must be positive")
    lines = max(1, round(args.seconds * args.rate))
    # The agents are started by the engine in this process: they inherit this checkout and no demo pauses.
    os.environ.update(common.bench_env())
    profiler = None
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            parser.error("--profile needs pyinstrument (pip install pyinstrument)")
        profiler = Profiler(async_mode="disabled")
    try:
        with common.work_dir("tuiorch-ui-flood-", keep=args.keep) as base:
            repo = base / "repo"
            write_project(repo, args.slots, lines, args.rate)
            if profiler is not None:
                profiler.start()
            figures = asyncio.run(flood(repo, args.slots))
            if profiler is not None:
                profiler.stop()
            check_logs(repo, args.slots, lines, figures)
    except common.BenchError as exc:
        print(f"ui_flood: {exc}", file=sys.stderr)
        return 1
    ok = report(figures, args.slots, lines, args.rate, verbose=args.verbose)
    if profiler is not None:
        from pyinstrument.renderers import ConsoleRenderer

        # Flat: where the time is spent itself, which a deep Textual call tree hides.
        print(profiler.output(ConsoleRenderer(unicode=False, color=False, flat=True, time="percent_of_total")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
