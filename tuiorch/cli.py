"""Command line: `tuiorch`, `tuiorch run --headless`, init, status, report, clean, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pygit2

from tuiorch.config import (
    Config,
    ConfigError,
    branch_name,
    default_config_toml,
    load_config,
    missing_agent_program,
    worktree_dir,
)
from tuiorch.gitops import GitError, GitRepo, branch_clash
from tuiorch.prompt import PromptError, load_template
from tuiorch.tasks import Task, TaskFileError, load_tasks

EXIT_OK = 0
EXIT_USAGE = 2
#: Seconds the demo agent pauses per step in `tuiorch demo`: slow enough to watch the pool at work.
DEMO_PACE = 2.0

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


def _open_repo(path: Path) -> GitRepo:
    try:
        return GitRepo(path)
    except GitError as exc:
        raise UsageError(str(exc)) from None


#: Environment variables that point every git started from here at another repository, index or store.
_REDIRECTING_GIT_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")


def _take_over_git_environment(repo: GitRepo, start: Path) -> None:
    """Drop GIT_DIR and the like from this process's environment, or refuse when they point elsewhere.

    Left in place, they reach every agent: its `git commit` in its own worktree would write to the
    repository (and the branch checked out there) they name. Naming this same repository is harmless
    (git sets GIT_DIR for a shell alias run where .git is a file).
    """
    found = pygit2.discover_repository(str(start))
    own_dirs = {repo.git_dir.resolve(), *([Path(found).resolve()] if found else [])}
    foreign = []
    for name in _REDIRECTING_GIT_VARIABLES:
        value = os.environ.get(name)
        if value is None:
            continue
        target = (start / value).resolve()
        same = (name == "GIT_DIR" and target in own_dirs) or (name == "GIT_WORK_TREE" and target == repo.root)
        if not same:
            foreign.append(f"{name}={value}")
    if foreign:
        raise UsageError(
            f"set in the environment: {', '.join(foreign)}; it would point every agent's git there instead of at "
            f"the agent's own worktree of {repo.root}: unset it and run tuiorch from inside the repository"
        )
    for name in _REDIRECTING_GIT_VARIABLES:
        os.environ.pop(name, None)


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
    if not tasks:
        raise UsageError(f"{task_file}: no tasks found; each task starts with a heading `## Task 1: Title`")
    for template in (config.prompt_template, config.resolve_template):
        try:
            load_template(template, root=root)
        except PromptError as exc:
            raise UsageError(f"{exc}; fix it or clear [prompt] in {root / 'tuiorch.toml'}") from None
    return config, tasks, task_file


def _check_repository(repo: GitRepo, config: Config, tasks: list[Task], *, fresh: bool) -> None:
    """Refuse, before anything is touched, a repository state the run would trip over halfway."""
    if shutil.which("git") is None:
        raise UsageError("`git` is not on PATH; tuiorch makes worktrees with the git command: install git")
    try:
        repo.tip(config.base)
    except GitError:
        raise UsageError(
            f"base branch '{config.base}' does not exist in {repo.root}; create it "
            f"(git branch {config.base}) or set base = \"...\" in tuiorch.toml"
        ) from None
    for workdir, operation, finish in repo.operations_in_progress(config.base):
        raise UsageError(
            f"{operation} is in progress in {workdir}; end it ({finish}) before running tuiorch, "
            f"which would otherwise merge into {config.base} under it"
        )
    if pygit2.Repository(str(repo.root)).head_is_detached:
        # A detached HEAD is often a rebase or bisect under way, whose end would clash with merges into base.
        raise UsageError(
            f"HEAD is detached in {repo.root}; finish what you are doing and switch to a branch "
            f"(git switch {config.base}) before running tuiorch"
        )
    _check_worktree_folder(worktree_dir(config, repo.root))
    _check_identity(repo)
    _check_merge_drivers(repo, config.base)
    _check_branch_clashes(repo, config, tasks)
    _check_stale_branches(repo, config, tasks, fresh=fresh)


def _check_identity(repo: GitRepo) -> None:
    """With user.useConfigOnly git never guesses who commits; neither may tuiorch's fallback identity."""
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_GIT_VARIABLES}
    only = subprocess.run(
        ["git", "config", "--type=bool", "--get", "user.useConfigOnly"], cwd=repo.root, env=env, capture_output=True
    )
    if only.stdout.strip() != b"true":
        return
    for who in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        done = subprocess.run(["git", "var", who], cwd=repo.root, env=env, capture_output=True)
        if done.returncode != 0:
            raise UsageError(
                f"user.useConfigOnly = true and no user.name/user.email is configured for {repo.root}, so git "
                "would refuse to commit and tuiorch will not make up an identity; set them (git config "
                "user.email you@example.com; git config user.name \"Your Name\") and run again"
            )


def _git_out(repo: GitRepo, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_GIT_VARIABLES}
    done = subprocess.run(["git", *args], cwd=repo.root, env=env, capture_output=True)
    return done.stdout.decode(errors="replace") if done.returncode == 0 else ""


def _check_merge_drivers(repo: GitRepo, base: str) -> None:
    """Refuse a custom merge driver (`merge=NAME` with merge.NAME.driver set): tuiorch merges with libgit2,
    which runs only the built-in text, binary and union drivers, so those files would merge unlike git."""
    drivers: dict[str, str] = {}
    for line in _git_out(repo, "config", "--get-regexp", r"^merge\..+\.driver$").splitlines():
        key, _, command = line.partition(" ")
        drivers[key[len("merge.") : -len(".driver")]] = command
    if not drivers:
        return
    sources: list[tuple[str, str]] = []
    for path in _git_out(repo, "ls-tree", "-r", "--name-only", "-z", base).split("\0"):
        if path == ".gitattributes" or path.endswith("/.gitattributes"):
            sources.append((path, _git_out(repo, "show", f"{base}:{path}")))
    info = _git_out(repo, "rev-parse", "--git-path", "info/attributes").strip()
    user_wide = _git_out(repo, "config", "--type=path", "--get", "core.attributesFile").strip()
    for extra in (info, user_wide):
        if extra and (repo.root / extra).is_file():
            sources.append((extra, (repo.root / extra).read_text(errors="replace")))
    for where, text in sources:
        for number, line in enumerate(text.splitlines(), 1):
            for word in line.split()[1:]:
                name = word.removeprefix("merge=") if word.startswith("merge=") else None
                if name in drivers:
                    raise UsageError(
                        f"{where}:{number} gives {line.split()[0]} the custom merge driver '{name}' "
                        f"(merge.{name}.driver = {drivers[name]}); tuiorch merges with libgit2, which cannot run "
                        "custom merge drivers, so those files would be merged unlike git merges them: remove that "
                        f"attribute (or merge.{name}.driver) before running tuiorch"
                    )


def _check_branch_clashes(repo: GitRepo, config: Config, tasks: list[Task]) -> None:
    """git keeps branches as paths: `agent/1` cannot exist beside a branch `agent`, nor `agent` beside `agent/x`."""
    existing = repo.local_branches()
    for task in tasks:
        branch = branch_name(config, task.id, repo.root.name)
        clash = branch_clash(branch, existing)
        if clash is not None:
            raise UsageError(
                f"branch = \"{config.branch}\" in tuiorch.toml makes '{branch}' for task {task.id}, which clashes "
                f"with the existing branch '{clash}' (git cannot hold both); rename that branch "
                f"(git branch -m {clash} NEW) or change branch in tuiorch.toml"
            )


def _check_worktree_folder(folder: Path) -> None:
    fix = "set worktrees in tuiorch.toml to a folder you can write"
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"worktrees folder {folder}: {existing} is a file, not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"worktrees folder {folder}: {existing} is not writable; {fix}")
    try:
        # os.access says yes to root everywhere, also on a read-only file system: try it for real.
        os.rmdir(tempfile.mkdtemp(prefix=".tuiorch-probe-", dir=existing))
    except OSError as exc:
        raise UsageError(f"worktrees folder {folder}: cannot write in {existing} ({exc.strerror}); {fix}") from None


def _check_stale_branches(repo: GitRepo, config: Config, tasks: list[Task], *, fresh: bool) -> None:
    """A task branch holding commits this run knows nothing of is someone's work: never build on it blindly."""
    from tuiorch.state import StateError, load_state

    ours: set[str] = set()
    if not fresh:
        try:
            state = load_state(repo.git_dir) or {}
        except StateError:
            state = {}  # the run reports the corrupt file itself and starts without it
        # Branches an earlier (crashed or stopped) run made for its tasks are resumed, not refused.
        ours = {str(data.get("branch")) for data in state.get("tasks", {}).values() if data.get("branch")}
    existing = set(repo.task_branches(config.branch))
    for task in tasks:
        branch = branch_name(config, task.id, repo.root.name)
        if branch in existing and branch not in ours and not repo.is_merged(branch, config.base):
            raise UsageError(
                f"branch '{branch}' (for task {task.id}) already exists with commits not in {config.base}; "
                f"merge or rename it, or drop it with `tuiorch clean --force`"
            )


def _refuse_if_running(repo: GitRepo) -> None:
    """Before anything is touched: one orchestrator per repository (the engine holds the lock itself)."""
    from tuiorch.runlock import RunLock

    holder = RunLock(repo.git_dir).holder()
    if holder is not None:
        raise UsageError(
            f"another tuiorch (pid {holder}) is running on this repository; wait for it to finish or stop it first"
        )


def _run(root: Path, *, headless: bool, as_json: bool, workers: int | None, fresh: bool) -> int:
    repo = _open_repo(root)
    _take_over_git_environment(repo, root)
    root = repo.root
    config, tasks, task_file = _load(root, workers)
    _refuse_if_running(repo)
    _check_repository(repo, config, tasks, fresh=fresh)
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
    branch = _current_branch(repo)
    try:
        text = default_config_toml(preset, base=branch or "main")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    config_path.write_text(text, encoding="utf-8")
    print(f"wrote {config_path}" + (f" (base = \"{branch}\", the branch checked out)" if branch else ""))
    tasks_path = repo.root / "TASKS.md"
    if not tasks_path.exists():
        tasks_path.write_text(TASKS_TEMPLATE, encoding="utf-8")
        print(f"wrote {tasks_path}")
    return EXIT_OK


def _current_branch(repo: GitRepo) -> str | None:
    """The branch checked out in the repository (the one `init` makes the base), None when detached."""
    head = pygit2.Repository(str(repo.root))
    if head.head_is_detached:
        return None
    try:
        return head.head.shorthand
    except pygit2.GitError:
        return None  # an unborn branch


def _saved_run(repo: GitRepo) -> dict | None:
    from tuiorch.state import StateError, load_state

    try:
        state = load_state(repo.git_dir)
    except StateError as exc:
        raise UsageError(str(exc)) from None
    if state is None:
        return None
    # Tasks still waiting untouched have no entry of their own in the saved state.
    saved = state.get("tasks", {})
    state["tasks"] = {task_id: saved.get(task_id, {"status": "queued"}) for task_id in state.get("order", [])}
    return state


def _status(root: Path, as_json: bool) -> int:
    from tuiorch.runlock import RunLock

    repo = _open_repo(root)
    live = RunLock(repo.git_dir).holder()
    state = _saved_run(repo)
    if state is None:
        if as_json:
            print(json.dumps({"run": None, **({"live": True, "pid": live} if live else {})}))
        elif live:
            print(f"run live (pid {live}): starting, nothing recorded yet")
        else:
            print("no run recorded in this repository")
        return EXIT_OK
    tasks = state["tasks"]
    if as_json:
        print(json.dumps({
            "finished": state.get("finished", False), "live": live is not None, "pid": live,
            "order": state.get("order", []), "tasks": tasks,
        }))
        return EXIT_OK
    counts: dict[str, int] = {}
    for data in tasks.values():
        counts[data.get("status", "?")] = counts.get(data.get("status", "?"), 0) + 1
    if live:
        where = f"live (pid {live})"
    elif state.get("finished"):
        where = "finished"
    else:
        where = "not finished (run tuiorch to pick it up)"
    print(f"run {where}: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks"))
    for task_id, data in tasks.items():
        commit = str(data.get("commit", ""))[:7]
        print(f"  {task_id:<8} {data.get('status', '?'):<13} {commit:<7} {data.get('reason', '')}")
    return EXIT_OK


def _report(root: Path, as_json: bool) -> int:
    """The final summary of the last run: every task, its end state, duration, merge commit; main's commits."""
    from tuiorch.agent_output import Usage
    from tuiorch.events import RunFinished
    from tuiorch.headless import format_summary

    repo = _open_repo(root)
    state = _saved_run(repo)
    if state is None:
        print(json.dumps({"run": None}) if as_json else "no run recorded in this repository")
        return EXIT_OK
    rows = []
    for task_id, data in state["tasks"].items():
        row = {"id": task_id, "title": data.get("title", ""), "status": data.get("status", "queued")}
        if data.get("started") and data.get("ended"):
            row["duration"] = round(data["ended"] - data["started"], 1)
        for key in ("commit", "reason", "usage"):
            if data.get(key):
                row[key] = data[key]
        rows.append(row)
    commits: list[dict[str, str]] = []
    if state.get("base_at_start"):
        with contextlib.suppress(GitError):
            commits = [
                {"commit": sha, "subject": subject}
                for sha, subject in repo.commits_since(state.get("base", "main"), state["base_at_start"])
            ]
    merged = sum(1 for r in rows if r["status"] == "merged")
    spent = [usage for r in rows if (usage := Usage.from_dict(r.get("usage"))) is not None]
    total = sum(spent, Usage()) if spent else None
    summary = RunFinished(
        tasks=rows,
        commits=commits,
        merged=merged,
        failed=len(rows) - merged,
        exit_code=int(merged != len(rows)),
        usage=total.to_dict() if total is not None else None,
    )
    print(json.dumps(summary.to_dict()) if as_json else format_summary(summary).lstrip("\n"))
    return EXIT_OK


def _clean(root: Path, force: bool) -> int:
    from tuiorch.runlock import RunLock, RunLockError

    repo = _open_repo(root)
    try:
        config = load_config(repo.root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # Held while cleaning: a run's worktrees and branches are its agents' work, and a run starting
    # meanwhile must not find them half deleted.
    lock = RunLock(repo.git_dir)
    try:
        lock.acquire()
    except RunLockError as exc:
        raise UsageError(f"{exc}; clean removes nothing while a run is live") from None
    try:
        lines = repo.clean(config.base, config.branch, worktree_dir(config, repo.root), force=force)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    finally:
        lock.release()
    for line in lines:
        print(line)
    return EXIT_OK


def _demo(target: str | None, *, headless: bool, as_json: bool, workers: int | None, pace: float | None) -> int:
    import tempfile

    from tuiorch.demo import DemoError, make_demo_repo

    if pace is not None:
        if pace < 0:
            raise UsageError("--pace must be 0 or more seconds")
        os.environ["TUIORCH_DEMO_DELAY"] = str(pace)
    else:
        os.environ.setdefault("TUIORCH_DEMO_DELAY", str(DEMO_PACE))  # the agents inherit it

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
            case "status":
                return _status(cwd, args.json)
            case "report":
                return _report(cwd, args.json)
            case "clean":
                return _clean(cwd, args.force)
            case "demo":
                if args.json and not args.headless:
                    raise UsageError("--json goes with --headless")
                return _demo(args.dir, headless=args.headless, as_json=args.json, workers=args.workers, pace=args.pace)
    except UsageError as exc:
        print(f"tuiorch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_USAGE
