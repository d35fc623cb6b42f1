"""Queue scale: parsing a 10,000-task TASKS.md, the scheduler's cost per pick, and queue-key latency in the TUI.

    python bench/queue_scale.py             # 10,000 tasks; pick_tasks at 1,000 / 10,000 / 100,000; the TUI
    python bench/queue_scale.py --quick     # smoke mode, a few seconds
    python bench/queue_scale.py --no-ui     # skip the TUI measurement

Figures: the median of several runs for load_tasks and pick_tasks (one free slot, 8 running tasks), the
growth of pick_tasks per 10x more tasks (x10 is linear), and for the TUI the p50/p95 time from a key press
(down, J, K) to the first frame the compositor renders with the result, through the real app under Pilot
(App.run_test; the key is handed to the driver as Pilot.press does, without Pilot's own waits for idle, which
alone take 40 ms or more). "settle" is from the key until the pane shows the engine's re-read queue and the
app is idle again: the cost a reorder leaves behind, off the key's path.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import common
from common import format_seconds, median_time, percentile

from tuiorch.scheduler import pick_tasks
from tuiorch.tasks import Priority, Task, load_tasks

RUNNING = 8
PRIORITY_CYCLE = (Priority.FEATURE, Priority.FEATURE, Priority.FOUNDATION, Priority.POLISH)


@dataclass(frozen=True)
class Scale:
    load_tasks: int
    load_runs: int
    pick_sizes: tuple[int, ...]
    pick_runs: int
    ui_tasks: int
    ui_presses: int


FULL = Scale(
    load_tasks=10_000,
    load_runs=5,
    pick_sizes=(1_000, 10_000, 100_000),
    pick_runs=7,
    ui_tasks=10_000,
    ui_presses=20,
)
QUICK = Scale(
    load_tasks=1_000, load_runs=3, pick_sizes=(100, 1_000, 10_000), pick_runs=3, ui_tasks=100, ui_presses=3
)


def _depends(number: int) -> tuple[str, ...]:
    """Every third task depends on its predecessor and on the task at half its number (never a cycle)."""
    if number % 3 or number < 3:
        return ()
    return tuple(dict.fromkeys((str(number - 1), str(number // 2))))


def _touches(number: int) -> tuple[str, ...]:
    return (f"src/mod{number % 200:03d}/", f"docs/part{number % 50:02d}.md")


def generated_tasks(count: int) -> list[Task]:
    """The same tasks generated_tasks_md describes, built directly (for sizes too big to bother parsing)."""
    return [
        Task(
            id=str(n),
            title=f"Queue scale task {n}",
            description="Change one module and its doc page.",
            depends=_depends(n),
            priority=PRIORITY_CYCLE[n % 4],
            touches=_touches(n),
        )
        for n in range(1, count + 1)
    ]


def generated_tasks_md(count: int) -> str:
    blocks = ["# Queue scale tasks\n"]
    for n in range(1, count + 1):
        meta = []
        if deps := _depends(n):
            meta.append(f"depends: {', '.join(deps)}")
        meta.append(f"priority: {PRIORITY_CYCLE[n % 4].label}")
        meta.append(f"touches: {', '.join(_touches(n))}")
        meta_text = "\n".join(meta)
        blocks.append(
            f"## Task {n}: Queue scale task {n}\n{meta_text}\n\nChange one module and its doc page.\n"
        )
    return "\n".join(blocks)


def time_load(count: int, runs: int) -> float:
    with common.work_dir("tuiorch-queue-") as base:
        path = base / "TASKS.md"
        path.write_text(generated_tasks_md(count), encoding="utf-8")
        loaded = load_tasks(path)
        if len(loaded) != count:
            raise common.BenchError(f"load_tasks returned {len(loaded)} tasks, expected {count}")
        return median_time(lambda: load_tasks(path), runs)


def time_pick(count: int, runs: int) -> float:
    """pick_tasks for one free slot: the first fifth merged, the next 8 running, the rest queued."""
    tasks = generated_tasks(count)
    merged_count = count // 5
    merged = {task.id for task in tasks[:merged_count]}
    running = tasks[merged_count : merged_count + RUNNING]
    queue = tasks[merged_count + RUNNING :]
    return median_time(lambda: pick_tasks(queue, running, merged, 1), runs)


# ---------------------------------------------------------------------------------------------- the TUI


def ui_available() -> str | None:
    """Why the TUI measurement can't run, or None."""
    try:
        from tuiorch.ui.app import TuiorchApp  # noqa: F401
        from tuiorch.ui.widgets import QueuePane  # noqa: F401
    except ImportError as exc:
        return f"tuiorch.ui with a queue pane is not importable ({exc})"
    return None


async def _measure_ui(repo: Path, presses: int) -> dict[str, list[float]]:
    from textual import events

    from tuiorch.config import load_config
    from tuiorch.ui.app import TuiorchApp
    from tuiorch.ui.widgets import QueuePane

    task_file = repo / "TASKS.md"
    # Paused: nothing starts, so every task stays in the queue and only the keys change the screen.
    app = TuiorchApp(
        repo, load_config(repo), load_tasks(task_file), task_file, paused=True, watch_tasks=False
    )
    count = len(app.orch.order)
    samples: dict[str, list[float]] = {"down": [], "J": [], "K": [], "settle": []}
    #: (what the frame must show, future set to the time of the first frame that shows it)
    waiting: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
    real_display = app._display

    def display(screen, renderable) -> None:  # noqa: ANN001 - Textual's private hook, wrapped
        real_display(screen, renderable)
        if renderable is not None and waiting:
            shown, done = waiting[0]
            if shown() and not done.done():
                done.set_result(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(QueuePane)
        table = pane.table
        await _until(pilot, lambda: table.row_count == count, "the queue pane to show every task")
        table.focus()
        await pilot.pause()

        async def press(key: str, shown: Callable[[], bool]) -> None:
            done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting[:] = [(shown, done)]
            event = events.Key(key, key if len(key) == 1 else None)
            event.set_sender(app)
            sent = time.perf_counter()
            assert app._driver is not None
            app._driver.send_message(event)  # as Pilot.press does, without its waits for idle
            try:
                samples[key].append(await asyncio.wait_for(done, 30.0) - sent)
            except TimeoutError as exc:
                raise common.BenchError(f"{key} never reached the screen") from exc
            waiting.clear()
            # Then until the pane shows the engine's own queue again and the app is idle: the next key is
            # measured on its own, and the cost of re-reading the queue is reported apart.
            await _until(pilot, lambda: app.queue_in_sync, "the queue to be re-read", timeout=30.0)
            await pilot.pause()
            samples["settle"].append(time.perf_counter() - sent)

        for _ in range(presses):
            before = table.cursor_row
            await press("down", lambda b=before: table.cursor_row == b + 1)
        for key, step in (("J", 1), ("K", -1)):
            for _ in range(presses):
                moving, before = pane.selected_id, table.cursor_row
                assert moving is not None
                await press(
                    key, lambda m=moving, b=before, s=step: pane.row_of(m) == b + s and pane.selected_id == m
                )
                expected = [tid for tid in app.orch.order if app.orch.records[tid].status.value == "queued"]
                if [line.id for line in pane.lines[: len(expected)]] != expected:
                    raise common.BenchError(f"after {key} the queue pane's order differs from the engine's")
    return samples


async def _until(pilot, condition, what: str, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise common.BenchError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


def measure_ui(count: int, presses: int) -> dict[str, list[float]]:
    with common.work_dir("tuiorch-queue-ui-") as base:
        repo = base / "repo"
        common.generate_repo(repo, 10)
        (repo / "tuiorch.toml").write_text('workers = 8\n\n[agent]\npreset = "demo"\n', encoding="utf-8")
        (repo / "TASKS.md").write_text(generated_tasks_md(count), encoding="utf-8")
        return asyncio.run(_measure_ui(repo, presses))


# ---------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="How tuiorch's queue scales: parsing, scheduling, TUI keys.")
    parser.add_argument("--quick", action="store_true", help="smoke mode: small sizes, a few seconds")
    parser.add_argument("--no-ui", action="store_true", help="skip the TUI key-latency measurement")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scale = QUICK if args.quick else FULL
    try:
        load = time_load(scale.load_tasks, scale.load_runs)
        verdict = "ok" if load <= 1.0 else "MISSED"
        print(
            f"load_tasks {scale.load_tasks:>7,} tasks: median {format_seconds(load)} over {scale.load_runs} runs"
            f" (target <= 1s: {verdict})"
        )
        picks = []
        for size in scale.pick_sizes:
            runs = scale.pick_runs if size <= 10_000 else 3
            seconds = time_pick(size, runs)
            picks.append(seconds)
            print(
                f"pick_tasks {size:>7,} tasks ({RUNNING} running, 1 free slot): median {format_seconds(seconds)}"
                f" over {runs} runs"
            )
        steps = "  ".join(
            f"{small:,}->{big:,} x{after / before:.1f}"
            for small, big, before, after in zip(
                scale.pick_sizes, scale.pick_sizes[1:], picks, picks[1:], strict=False
            )
        )
        print(f"pick_tasks scaling ratio  {steps}  (x10 per 10x tasks is linear)")
        sys.stdout.flush()
        if args.no_ui:
            return 0
        if (missing := ui_available()) is not None:
            print(f"ui: skipped: {missing}")
            return 0
        samples = measure_ui(scale.ui_tasks, scale.ui_presses)
        figures = "  ".join(
            f"{key} p50 {format_seconds(percentile(values, 0.5))} p95 {format_seconds(percentile(values, 0.95))}"
            for key, values in samples.items()
            if key != "settle"
        )
        settle = samples["settle"]
        figures += (
            f"  (then settled in p50 {format_seconds(percentile(settle, 0.5))}"
            f" p95 {format_seconds(percentile(settle, 0.95))})"
        )
        print(
            f"ui queue {scale.ui_tasks:,} tasks, key to screen ({scale.ui_presses} presses each): {figures}"
        )
    except common.BenchError as exc:
        print(f"queue_scale: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
