"""Render README screenshots of the real app with Pilot: python scripts/screenshots.py [OUT_DIR].

Makes the demo repository in a temp dir, runs the demo agent, and saves SVGs at 160x48 and 80x24 (the
"-80x24" files) of the queue reordered, help, the add-task form, the main screen mid-run and finished, the
conflict modal, a task's log and the summary; then, in a repository whose two tasks clash at line 1,600 of
a file, the diff screen (unified and side by side) and that conflict; PNGs too if cairosvg is installed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tuiorch.config import load_config
from tuiorch.demo import make_demo_repo
from tuiorch.events import TaskStatus
from tuiorch.tasks import load_tasks
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import AddTaskScreen, ConflictScreen, DiffScreen, HelpScreen, LogScreen, SummaryScreen
from tuiorch.ui.widgets import QueuePane

#: (size, file-name suffix): the smallest terminal the app must serve, and a roomy one (the README's).
SIZES = (((160, 48), ""), ((80, 24), "-80x24"))


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await pilot.pause(0.1)
    return True


def shoot(app: TuiorchApp, out: Path, name: str) -> Path:
    path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
    print(f"wrote {path}")
    return path


def make_app(repo: Path, *, paused: bool) -> TuiorchApp:
    config = load_config(repo)
    task_file = repo / config.tasks
    return TuiorchApp(repo, config, load_tasks(task_file), task_file, paused=paused)


def in_conflict(app: TuiorchApp) -> str | None:
    return next((tid for tid, rec in app.orch.records.items() if rec.status is TaskStatus.CONFLICT), None)


async def capture(out: Path, size: tuple[int, int], suffix: str) -> list[Path]:
    """One demo run at `size`: queue, help, add-task, mid-run, conflict, log and summary."""
    shots: list[Path] = []

    def snap(name: str) -> None:
        shots.append(shoot(app, out, name + suffix))

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_demo_repo(Path(tmp) / "calc")
        app = make_app(repo, paused=True)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.5)
            await pilot.press("down", "down", "K")  # queue reordering: the third task moves up
            await pilot.pause(0.3)
            snap("queue-reordering")
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 10)
            await pilot.pause(0.3)
            snap("help")
            await pilot.press("escape", "a")
            await wait_for(pilot, lambda: isinstance(app.screen, AddTaskScreen), 10)
            await pilot.press(*"9", "enter", *"Document the CLI", "enter", *"4", "enter")
            await pilot.pause(0.3)
            snap("add-task")
            await pilot.press("escape")
            await pilot.press("p")  # resume
            await wait_for(pilot, lambda: app.orch.running_count() >= min(2, app.orch.workers), 30)
            await pilot.pause(0.8)
            if app.screen is app.screen_stack[0]:
                snap("main-mid-run")
            if await wait_for(pilot, lambda: in_conflict(app) is not None):
                if app.screen is app.screen_stack[0]:
                    await pilot.press("c")
                if await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen), 10):
                    await pilot.pause(0.5)
                    snap("conflict-modal")
                    await pilot.press("escape")  # leave it for later: the summary shows it pending
            if "main-mid-run" + suffix not in {p.stem for p in shots}:
                await wait_for(pilot, lambda: app.orch.running_count() >= 1 and app.screen is app.screen_stack[0], 60)
                await pilot.pause(0.3)
                snap("main-mid-run")
            await wait_for(pilot, lambda: not any(r.status.is_active for r in app.orch.records.values())
                           and not app.orch.queue_view(), 180)
            while app.screen is not app.screen_stack[0]:
                await pilot.press("escape")
                await pilot.pause(0.2)
            await pilot.pause(0.3)
            snap("main-finished")
            app.query_one(QueuePane).select("6")
            await pilot.press("l")
            if await wait_for(pilot, lambda: isinstance(app.screen, LogScreen), 10):
                await pilot.pause(0.6)
                snap("log")
                await pilot.press("escape")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen), 10)
            await pilot.pause(0.5)
            snap("summary")
            await pilot.press("escape", "q")
            if not await wait_for(pilot, lambda: not app.is_running, 5):
                await pilot.press("y")
                await wait_for(pilot, lambda: not app.is_running, 30)
    return shots


def settings_py(changes: dict[int, str]) -> str:
    return "".join(changes.get(i, f"SETTING_{i} = {i}") + "\n" for i in range(1, 2001))


def make_review_repo(root: Path) -> Path:
    """A `master` repository with a 2,000-line settings.py; two tasks change its lines 12 and 1,600 (the
    second also line 1,900), and [merge] auto = false leaves each waiting for review."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    root.mkdir(parents=True)
    git("init", "-q", "-b", "master")
    (root / "settings.py").write_text(settings_py({}))
    (root / "tuiorch.toml").write_text(
        'base = "master"\nworkers = 2\n\n[agent]\npreset = "demo"\n\n[merge]\nauto = false\n'
    )
    one = settings_py({12: "SETTING_12 = 'fast'", 1600: "SETTING_1600 = 'eu-west'"})
    two = settings_py({12: "SETTING_12 = 'safe'", 1600: "SETTING_1600 = 'us-east'", 1900: "SETTING_1900 = 'new'"})
    (root / "TASKS.md").write_text(
        f"## Task 1: Tune for speed\n\n```write settings.py\n{one}```\n\n"
        f"## Task 2: Move to us-east\n\n```write settings.py\n{two}```\n"
    )
    git("add", "-A")
    git("commit", "-q", "-m", "settings")
    return root


async def capture_review(out: Path, size: tuple[int, int], suffix: str) -> list[Path]:
    """The diff screen of a finished task, then the conflict of the other one at line 1,600."""
    shots: list[Path] = []

    def snap(name: str) -> None:
        app.clear_notifications()
        shots.append(shoot(app, out, name + suffix))

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_review_repo(Path(tmp) / "settings")
        app = make_app(repo, paused=False)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: all(r.status is TaskStatus.FINISHED for r in app.orch.records.values()), 60)
            app.query_one(QueuePane).select("1")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None, 10)
            await pilot.pause(0.5)
            snap("diff-unified")
            await pilot.press("v")
            await pilot.pause(0.5)
            snap("diff-side-by-side")
            await pilot.press("m")  # merge task 1 from the review
            await wait_for(pilot, lambda: app.orch.records["1"].status is TaskStatus.MERGED, 30)
            app.query_one(QueuePane).select("2")
            await pilot.press("m")  # task 2 now conflicts at lines 12 and 1,600
            await wait_for(pilot, lambda: in_conflict(app) == "2" and not app.orch.is_busy("2"), 30)
            await pilot.pause(0.5)
            snap("conflict-in-header")
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen) and app.screen.current is not None, 10)
            await pilot.press("o", "a")  # line 12: master's side; on to line 1,600, with the merge base shown
            await pilot.pause(0.5)
            snap("conflict-deep")
            await pilot.press("escape", "q")
            if not await wait_for(pilot, lambda: not app.is_running, 5):
                await pilot.press("y")
                await wait_for(pilot, lambda: not app.is_running, 30)
    return shots


def to_png(svgs: list[Path]) -> None:
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        print("cairosvg not installed: SVGs only")
        return
    for svg in svgs:
        png = svg.with_suffix(".png")
        cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=1600)
        print(f"wrote {png}")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TUIORCH_DEMO_DELAY", "0.4")
    for size, suffix in SIZES:
        to_png(asyncio.run(capture(out, size, suffix)))
        to_png(asyncio.run(capture_review(out, size, suffix)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
