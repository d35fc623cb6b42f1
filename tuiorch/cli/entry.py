"""The command line: `tuiorch`, `tuiorch run --headless`, init, status, report, clean, demo."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tuiorch.cli.common import EXIT_OK, EXIT_USAGE, UsageError
from tuiorch.cli.init import init
from tuiorch.cli.run import DEMO_PACE, demo, run
from tuiorch.cli.saved import clean, report, status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuiorch", description="Supervise a pool of coding agents, each in its own git worktree."
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the task queue (the TUI, or --headless)")
    run.add_argument("--headless", action="store_true", help="line output instead of the full-screen app")
    run.add_argument("--json", action="store_true", help="with --headless: one JSON object a line")
    run.add_argument("--workers", type=int, help="pool size (overrides tuiorch.toml)")
    run.add_argument("--fresh", action="store_true", help="forget the saved run state and start over")

    init = sub.add_parser("init", help="write tuiorch.toml and a TASKS.md template")
    init.add_argument(
        "--preset", default="claude", help="agent preset (claude, codex, aider, gemini, demo, ...)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing tuiorch.toml")

    for name, text in (("status", "where the run stands"), ("report", "summary of the last run")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true", help="machine-readable output")

    clean = sub.add_parser("clean", help="remove tuiorch's worktrees and merged task branches")
    clean.add_argument("--force", action="store_true", help="also delete task branches with unmerged commits")

    demo = sub.add_parser(
        "demo",
        help="make a demo repo and run it with the built-in demo agent",
        description="Make a small demo repository and run its tasks with the built-in demo agent (no LLM). "
        f"The agent pauses {DEMO_PACE:g} s per step so the run can be followed (about half a minute); change it "
        "with --pace SECONDS or the TUIORCH_DEMO_DELAY environment variable (0 runs it at full speed).",
    )
    demo.add_argument("dir", nargs="?", help="where to make the demo repo (default: a new temp dir)")
    demo.add_argument("--headless", action="store_true", help="line output instead of the full-screen app")
    demo.add_argument("--json", action="store_true", help="with --headless: one JSON object a line")
    demo.add_argument("--workers", type=int, help="pool size")
    demo.add_argument(
        "--pace",
        type=float,
        metavar="SECONDS",
        help=f"seconds the demo agent pauses per step (default {DEMO_PACE:g}, or TUIORCH_DEMO_DELAY)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # As a program: the interpreter's last collection at exit would walk every object the run made
        # (50-150 ms after a run); the memory goes back to the system with the process anyway.
        atexit.register(gc.freeze)
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, Path.cwd())
    except UsageError as exc:
        print(f"tuiorch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace, cwd: Path) -> int:
    """Run the chosen subcommand; no subcommand runs the TUI."""
    if args.command in ("run", "demo") and args.json and not args.headless:
        raise UsageError("--json goes with --headless")
    return _COMMANDS[args.command](args, cwd)


_COMMANDS: dict[str | None, Callable[[argparse.Namespace, Path], int]] = {
    None: lambda args, cwd: run(cwd, headless=False, as_json=False, workers=None, fresh=False),
    "run": lambda args, cwd: run(
        cwd, headless=args.headless, as_json=args.json, workers=args.workers, fresh=args.fresh
    ),
    "init": lambda args, cwd: init(cwd, args.preset, args.force),
    "status": lambda args, cwd: status(cwd, args.json),
    "report": lambda args, cwd: report(cwd, args.json),
    "clean": lambda args, cwd: clean(cwd, args.force),
    "demo": lambda args, cwd: demo(
        args.dir, headless=args.headless, as_json=args.json, workers=args.workers, pace=args.pace
    ),
}
