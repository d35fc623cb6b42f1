"""`tuiorch run` (the TUI or --headless) and `tuiorch demo`, which makes a demo repository and runs it."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from tuiorch.cli.common import UsageError, load_run_inputs, open_repo
from tuiorch.cli.preflight import check_repository, refuse_if_running, take_over_git_environment

#: Seconds the demo agent pauses per step in `tuiorch demo`: slow enough to watch the pool at work.
DEMO_PACE = 2.0


def run(root: Path, *, headless: bool, as_json: bool, workers: int | None, fresh: bool) -> int:
    repo = open_repo(root)
    take_over_git_environment(repo, root)
    root = repo.root
    config, tasks, task_file = load_run_inputs(root, workers)
    refuse_if_running(repo)
    check_repository(repo, config, tasks, fresh=fresh)
    if fresh:
        from tuiorch.state import state_path

        path = state_path(repo.git_dir)
        if path.exists():
            print(f"--fresh: dropping the saved run state {path}", file=sys.stderr)
            path.unlink()
    if headless:
        gc.disable()  # as for the command line's own imports (see tuiorch.cli)
        try:
            from tuiorch.headless import run_headless
        finally:
            gc.enable()
        return run_headless(root, config, tasks, task_file=task_file, as_json=as_json)
    from tuiorch.ui import run_app

    return run_app(root, config, tasks, task_file)


def demo(
    target: str | None, *, headless: bool, as_json: bool, workers: int | None, pace: float | None
) -> int:
    import tempfile

    from tuiorch.demo import DemoError, make_demo_repo

    _set_pace(pace)
    path = Path(target) if target else Path(tempfile.mkdtemp(prefix="tuiorch-demo-")) / "demo"
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} exists and is not an empty folder; name a new folder for the demo")
    try:
        root = make_demo_repo(path)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(f"demo repository: {root}", file=sys.stderr)
    return run(root, headless=headless, as_json=as_json, workers=workers, fresh=False)


def _set_pace(pace: float | None) -> None:
    """The demo agent's pause per step, for the agents to inherit."""
    if pace is not None:
        if pace < 0:
            raise UsageError("--pace must be 0 or more seconds")
        os.environ["TUIORCH_DEMO_DELAY"] = str(pace)
    else:
        os.environ.setdefault("TUIORCH_DEMO_DELAY", str(DEMO_PACE))
