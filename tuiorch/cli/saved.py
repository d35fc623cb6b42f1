"""`tuiorch status`, `tuiorch report` and `tuiorch clean`: what the saved state of the last run says, and
removing what runs left behind."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

from tuiorch.cli.common import EXIT_OK, UsageError, open_repo
from tuiorch.config import Config, ConfigError, load_config, worktree_dir
from tuiorch.git import GitError, GitRepo
from tuiorch.model.status import AGENT_AT_WORK


def saved_run(repo: GitRepo) -> dict | None:
    from tuiorch.state import StateError, entries_in_order, load_state

    try:
        state = load_state(repo.git_dir)
    except StateError as exc:
        raise UsageError(str(exc)) from None
    if state is None:
        return None
    state["tasks"] = entries_in_order(state)
    return state


def status(root: Path, as_json: bool) -> int:
    from tuiorch.runlock import RunLock

    repo = open_repo(root)
    live = RunLock(repo.git_dir).holder()
    state = saved_run(repo)
    if state is None:
        _print_no_run(live, as_json)
    elif as_json:
        print(
            json.dumps(
                {
                    "finished": state.get("finished", False),
                    "live": live is not None,
                    "pid": live,
                    "order": state.get("order", []),
                    "tasks": state["tasks"],
                }
            )
        )
    else:
        _print_status(state, live)
    return EXIT_OK


def _print_no_run(live: int | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"run": None, **({"live": True, "pid": live} if live else {})}))
    elif live:
        print(f"run live (pid {live}): starting, nothing recorded yet")
    else:
        print("no run recorded in this repository")


def _print_status(state: dict, live: int | None) -> None:
    """One line for the run (live, finished or not), then one line a task."""
    tasks = state["tasks"]
    counts = Counter(data.get("status", "?") for data in tasks.values())
    print(f"run {_run_state(state, live)}: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks"))
    for task_id, data in tasks.items():
        commit = str(data.get("commit", ""))[:7]
        print(
            f"  {task_id:<8} {data.get('status', '?'):<13} {commit:<7} {_sandbox_word(data)}{data.get('reason', '')}"
        )


def _run_state(state: dict, live: int | None) -> str:
    if live:
        return f"live (pid {live})"
    if state.get("finished"):
        return "finished"
    return "not finished (run tuiorch to pick it up)"


#: Saved statuses (as written) of a task whose agent is at work.
_AGENT_AT_WORK = frozenset(status.value for status in AGENT_AT_WORK)


def _sandbox_word(data: dict) -> str:
    """For an agent at work: the node it runs on (when not this machine), and whether it runs confined
    to its worktree and branch."""
    if data.get("status") not in _AGENT_AT_WORK:
        return ""
    where = str(data.get("where") or "local")
    node = "" if where == "local" else f"on {where} "
    return node + ("confined " if data.get("confined") else "unconfined ")


def report(root: Path, as_json: bool) -> int:
    """The final summary of the last run: every task, its end state, duration, merge commit; main's commits."""
    from tuiorch import report as run_report
    from tuiorch.headless import format_summary

    repo = open_repo(root)
    state = saved_run(repo)
    if state is None:
        print(json.dumps({"run": None}) if as_json else "no run recorded in this repository")
        return EXIT_OK
    summary = run_report.from_saved(state["tasks"], _base_commits(repo, state))
    print(json.dumps(summary.to_dict()) if as_json else format_summary(summary).lstrip("\n"))
    return EXIT_OK


def _base_commits(repo: GitRepo, state: dict) -> list[tuple[str, str]]:
    """The commits (sha, subject) the run added to the base branch, newest first; none when git cannot say."""
    if not state.get("base_at_start"):
        return []
    with contextlib.suppress(GitError):
        return repo.commits_since(state.get("base", "main"), state["base_at_start"])
    return []


def _clean_runner(root: Path, config: Config) -> list[str]:
    """Agents a dead run left on a Ray cluster are ended (their work brought into their branches first,
    so the branch cleanup below sees it) and the nodes' worktrees removed."""
    if config.runner.kind != "ray":
        return []
    from tuiorch.runners.ray.runner import clean_cluster

    try:
        return clean_cluster(root, config)
    except Exception as exc:  # a cluster that is down must not stop the local cleanup
        return [f"could not clean up on the Ray cluster at {config.runner.address}: {exc}"]


def clean(root: Path, force: bool) -> int:
    from tuiorch.runlock import RunLock, RunLockError

    repo = open_repo(root)
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
        lines = _clean_runner(repo.root, config)
        lines += repo.clean(config.base, config.branch, worktree_dir(config, repo.root), force=force)
    except GitError as exc:
        raise UsageError(str(exc)) from None
    finally:
        lock.release()
    for line in lines:
        print(line)
    return EXIT_OK
