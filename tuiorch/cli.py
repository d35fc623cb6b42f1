"""Command line: `tuiorch`, `tuiorch run --headless`, init, status, report, clean, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tuiorch.config import (
    ConfigError,
    default_config_toml,
    expand_path_template,
    load_config,
    missing_agent_program,
)
from tuiorch.gitops import GitError, GitRepo
from tuiorch.tasks import TaskFileError, load_tasks

EXIT_OK = 0
EXIT_USAGE = 2

TASKS_TEMPLATE = """\
# Tasks for tuiorch
#
# Each task is a heading `## Task <id>: <title>`, then optional metadata lines, then the
# description handed to the agent. See README.md for the format.

## Task 1: Describe your first task here
priority: foundation
touches: src/

What the agent should do, in as much detail as it needs.
"""


class UsageError(Exception):
    """Bad usage, config, task file or repository state: exit 2 with this message."""


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
    init.add_argument("--preset", default="claude", help="agent preset (claude, codex, aider, gemini, demo, ...)")
    init.add_argument("--force", action="store_true", help="overwrite an existing tuiorch.toml")

    for name, text in (("status", "where the run stands"), ("report", "summary of the last run")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true", help="machine-readable output")

    clean = sub.add_parser("clean", help="remove tuiorch's worktrees and merged task branches")
    clean.add_argument("--force", action="store_true", help="also delete task branches with unmerged commits")

    demo = sub.add_parser("demo", help="make a demo repo and run it with the built-in demo agent")
    demo.add_argument("dir", nargs="?", help="where to make the demo repo (default: a new temp dir)")
    demo.add_argument("--headless", action="store_true", help="line output instead of the full-screen app")
    demo.add_argument("--json", action="store_true", help="with --headless: one JSON object a line")
    demo.add_argument("--workers", type=int, help="pool size")
    return parser


def _open_repo(path: Path) -> GitRepo:
    try:
        return GitRepo(path)
    except GitError as exc:
        raise UsageError(str(exc)) from None


def _load(root: Path, workers: int | None):  # noqa: ANN202 - a small private tuple
    try:
        config = load_config(root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if workers is not None:
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        config.workers = workers
    missing = missing_agent_program(config)
    if missing:
        raise UsageError(f"{missing}; install it or set [agent] preset in {root / 'tuiorch.toml'}")
    task_file = root / config.tasks
    if not task_file.exists():
        raise UsageError(f"{task_file}: no task file; write one or run `tuiorch init`")
    try:
        tasks = load_tasks(task_file)
    except TaskFileError as exc:
        raise UsageError(str(exc)) from None
    return config, tasks, task_file


def _run(root: Path, *, headless: bool, as_json: bool, workers: int | None, fresh: bool) -> int:
    repo = _open_repo(root)
    root = repo.root
    config, tasks, task_file = _load(root, workers)
    if fresh:
        from tuiorch.state import state_path

        path = state_path(repo.git_dir)
        if path.exists():
            print(f"--fresh: dropping the saved run state {path}", file=sys.stderr)
            path.unlink()
    if headless:
        from tuiorch.headless import run_headless

        return run_headless(root, config, tasks, task_file=task_file, as_json=as_json)
    from tuiorch.ui import run_app

    return run_app(root, config, tasks, task_file)


def _init(root: Path, preset: str, force: bool) -> int:
    repo = _open_repo(root)
    config_path = repo.root / "tuiorch.toml"
    if config_path.exists() and not force:
        raise UsageError(f"{config_path} exists; pass --force to overwrite it")
    try:
        text = default_config_toml(preset)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    config_path.write_text(text, encoding="utf-8")
    print(f"wrote {config_path}")
    tasks_path = repo.root / "TASKS.md"
    if not tasks_path.exists():
        tasks_path.write_text(TASKS_TEMPLATE, encoding="utf-8")
        print(f"wrote {tasks_path}")
    return EXIT_OK


def _status(root: Path, as_json: bool) -> int:
    from tuiorch.state import StateError, load_state

    repo = _open_repo(root)
    try:
        state = load_state(repo.git_dir)
    except StateError as exc:
        raise UsageError(str(exc)) from None
    if state is None:
        print(json.dumps({"run": None}) if as_json else "no run recorded in this repository")
        return EXIT_OK
    tasks = state.get("tasks", {})
    if as_json:
        print(json.dumps({"order": state.get("order", []), "tasks": tasks}))
        return EXIT_OK
    counts: dict[str, int] = {}
    for data in tasks.values():
        counts[data.get("status", "?")] = counts.get(data.get("status", "?"), 0) + 1
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks")
    for task_id in state.get("order", []):
        data = tasks.get(task_id, {})
        commit = str(data.get("commit", ""))[:7]
        print(f"  {task_id:<8} {data.get('status', '?'):<13} {commit:<7} {data.get('reason', '')}")
    return EXIT_OK


def _clean(root: Path, force: bool) -> int:
    repo = _open_repo(root)
    try:
        config = load_config(repo.root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    worktree_dir = Path(expand_path_template(config.worktrees, repo=repo.root.name, id=""))
    if not worktree_dir.is_absolute():
        worktree_dir = (repo.root / worktree_dir).resolve()
    try:
        lines = repo.clean(config.base, config.branch, worktree_dir, force=force)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    for line in lines:
        print(line)
    return EXIT_OK


def _demo(target: str | None, *, headless: bool, as_json: bool, workers: int | None) -> int:
    import tempfile

    from tuiorch.demo import DemoError, make_demo_repo

    path = Path(target) if target else Path(tempfile.mkdtemp(prefix="tuiorch-demo-")) / "demo"
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} exists and is not an empty folder; name a new folder for the demo")
    try:
        root = make_demo_repo(path)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(f"demo repository: {root}", file=sys.stderr)
    return _run(root, headless=headless, as_json=as_json, workers=workers, fresh=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cwd = Path.cwd()
    try:
        match args.command:
            case None:
                return _run(cwd, headless=False, as_json=False, workers=None, fresh=False)
            case "run":
                if args.json and not args.headless:
                    raise UsageError("--json goes with --headless")
                return _run(cwd, headless=args.headless, as_json=args.json, workers=args.workers, fresh=args.fresh)
            case "init":
                return _init(cwd, args.preset, args.force)
            case "status" | "report":
                return _status(cwd, args.json)
            case "clean":
                return _clean(cwd, args.force)
            case "demo":
                if args.json and not args.headless:
                    raise UsageError("--json goes with --headless")
                return _demo(args.dir, headless=args.headless, as_json=args.json, workers=args.workers)
    except UsageError as exc:
        print(f"tuiorch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE
