"""Render README screenshots of the real app with Pilot: python scripts/screenshots.py [OUT_DIR].

Makes the demo repository in a temp dir, runs the demo agent, and saves SVGs of the main screen
mid-run, queue reordering, the conflict modal and the summary; PNGs too if cairosvg is installed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tuiorch.config import load_config
from tuiorch.demo import make_demo_repo
from tuiorch.tasks import load_tasks
from tuiorch.ui.app import TuiorchApp
from tuiorch.ui.screens import ConflictScreen, SummaryScreen

SIZE = (140, 42)


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


async def capture(out: Path) -> list[Path]:
    shots: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_demo_repo(Path(tmp) / "calc")
        app = make_app(repo, paused=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.5)
            await pilot.press("down", "down", "K")  # queue reordering: the third task moves up
            await pilot.pause(0.3)
            shots.append(shoot(app, out, "queue-reordering"))
            await pilot.press("p")  # resume
            await wait_for(pilot, lambda: app.orch.running_count() >= min(2, app.orch.workers), 30)
            await pilot.pause(0.3)
            if not isinstance(app.screen, ConflictScreen):  # the conflict modal opens itself; shoot before
                shots.append(shoot(app, out, "main-mid-run"))
            if await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen)):
                await pilot.pause(0.5)
                shots.append(shoot(app, out, "conflict-modal"))
                await pilot.press("t")
            if "main-mid-run" not in {p.stem for p in shots}:
                # The conflict came first: shoot the pool at work once it runs again with no modal up.
                await wait_for(pilot, lambda: app.orch.running_count() >= 1 and app.screen is app.screen_stack[0], 60)
                await pilot.pause(0.3)
                shots.append(shoot(app, out, "main-mid-run"))
            await wait_for(pilot, lambda: not any(r.status.is_active for r in app.orch.records.values())
                           and not app.orch.queue_view(), 180)
            if isinstance(app.screen, ConflictScreen):
                await pilot.press("escape")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen), 10)
            await pilot.pause(0.5)
            shots.append(shoot(app, out, "summary"))
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
    to_png(asyncio.run(capture(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
