"""Checks before a run touches anything: the git environment, the repository's state, the worktree folder,
the committer identity, merge drivers and task branches. Each refusal says what to do about it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tuiorch.cli.common import REDIRECTING_GIT_VARIABLES, UsageError
from tuiorch.config import Config, branch_name, worktree_dir
from tuiorch.git import GitError, GitRepo, branch_clash, discover_git_dir, head_is_detached
from tuiorch.tasks import Task


def take_over_git_environment(repo: GitRepo, start: Path) -> None:
    """Drop GIT_DIR and the like from this process's environment, or refuse when they point elsewhere.

    Left in place, they reach every agent: its `git commit` in its own worktree would write to the
    repository (and the branch checked out there) they name. Naming this same repository is harmless
    (git sets GIT_DIR for a shell alias run where .git is a file).
    """
    foreign = _foreign_git_variables(repo, start)
    if foreign:
        raise UsageError(
            f"set in the environment: {', '.join(foreign)}; it would point every agent's git there instead of at "
            f"the agent's own worktree of {repo.root}: unset it and run tuiorch from inside the repository"
        )
    for name in REDIRECTING_GIT_VARIABLES:
        os.environ.pop(name, None)


def _foreign_git_variables(repo: GitRepo, start: Path) -> list[str]:
    """`NAME=value` of each redirecting variable that names another repository or work tree."""
    found = discover_git_dir(start)
    # What each variable may name and stay harmless.
    own = {
        "GIT_DIR": {repo.git_dir.resolve(), *([found.resolve()] if found else [])},
        "GIT_WORK_TREE": {repo.root},
    }
    foreign = []
    for name in REDIRECTING_GIT_VARIABLES:
        value = os.environ.get(name)
        if value is not None and (start / value).resolve() not in own.get(name, set()):
            foreign.append(f"{name}={value}")
    return foreign


def check_repository(repo: GitRepo, config: Config, tasks: list[Task], *, fresh: bool) -> None:
    """Refuse, before anything is touched, a repository state the run would trip over halfway."""
    if shutil.which("git") is None:
        raise UsageError("`git` is not on PATH; tuiorch makes worktrees with the git command: install git")
    try:
        repo.tip(config.base)
    except GitError:
        raise UsageError(
            f"base branch '{config.base}' does not exist in {repo.root}; create it "
            f'(git branch {config.base}) or set base = "..." in tuiorch.toml'
        ) from None
    for workdir, operation, finish in repo.operations_in_progress(config.base):
        raise UsageError(
            f"{operation} is in progress in {workdir}; end it ({finish}) before running tuiorch, "
            f"which would otherwise merge into {config.base} under it"
        )
    if head_is_detached(repo.root):
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
    if _git_out(repo, "config", "--type=bool", "--get", "user.useConfigOnly").strip() != "true":
        return
    if any(_git(repo, "var", who).returncode != 0 for who in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")):
        raise UsageError(
            f"user.useConfigOnly = true and no user.name/user.email is configured for {repo.root}, so git "
            "would refuse to commit and tuiorch will not make up an identity; set them (git config "
            'user.email you@example.com; git config user.name "Your Name") and run again'
        )


def _git(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in REDIRECTING_GIT_VARIABLES}
    return subprocess.run(["git", *args], cwd=repo.root, env=env, capture_output=True)


def _git_out(repo: GitRepo, *args: str) -> str:
    done = _git(repo, *args)
    return done.stdout.decode(errors="replace") if done.returncode == 0 else ""


def _check_merge_drivers(repo: GitRepo, base: str) -> None:
    """Refuse a custom merge driver (`merge=NAME` with merge.NAME.driver set): tuiorch merges with libgit2,
    which runs only the built-in text, binary and union drivers, so those files would merge unlike git."""
    drivers = _merge_drivers(repo)
    if not drivers:
        return
    for where, text in _attribute_files(repo, base):
        for number, line in enumerate(text.splitlines(), 1):
            if (name := _custom_driver(line, drivers)) is not None:
                raise UsageError(
                    f"{where}:{number} gives {line.split()[0]} the custom merge driver '{name}' "
                    f"(merge.{name}.driver = {drivers[name]}); tuiorch merges with libgit2, which cannot run "
                    "custom merge drivers, so those files would be merged unlike git merges them: remove that "
                    f"attribute (or merge.{name}.driver) before running tuiorch"
                )


def _merge_drivers(repo: GitRepo) -> dict[str, str]:
    """The command of each merge driver configured (merge.NAME.driver), by NAME."""
    drivers: dict[str, str] = {}
    for line in _git_out(repo, "config", "--get-regexp", r"^merge\..+\.driver$").splitlines():
        key, _, command = line.partition(" ")
        drivers[key[len("merge.") : -len(".driver")]] = command
    return drivers


def _custom_driver(line: str, drivers: dict[str, str]) -> str | None:
    """The configured merge driver an attributes line gives its pattern (`merge=NAME`), if any."""
    names = (word.removeprefix("merge=") for word in line.split()[1:] if word.startswith("merge="))
    return next((name for name in names if name in drivers), None)


def _attribute_files(repo: GitRepo, base: str) -> list[tuple[str, str]]:
    """(where, text) of every attributes file that applies to merges into `base`: the committed
    .gitattributes files, the repository's info/attributes and the user-wide core.attributesFile."""
    sources: list[tuple[str, str]] = []
    for path in _git_out(repo, "ls-tree", "-r", "--name-only", "-z", base).split("\0"):
        if f"/{path}".endswith("/.gitattributes"):
            sources.append((path, _git_out(repo, "show", f"{base}:{path}")))
    info = _git_out(repo, "rev-parse", "--git-path", "info/attributes").strip()
    user_wide = _git_out(repo, "config", "--type=path", "--get", "core.attributesFile").strip()
    for extra in (info, user_wide):
        if extra and (repo.root / extra).is_file():
            sources.append((extra, (repo.root / extra).read_text(errors="replace")))
    return sources


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
        raise UsageError(
            f"worktrees folder {folder}: cannot write in {existing} ({exc.strerror}); {fix}"
        ) from None


def _check_stale_branches(repo: GitRepo, config: Config, tasks: list[Task], *, fresh: bool) -> None:
    """A task branch holding commits this run knows nothing of is someone's work: never build on it blindly."""
    # Branches an earlier (crashed or stopped) run made for its tasks are resumed, not refused.
    ours = set() if fresh else _branches_of_saved_run(repo)
    unknown = set(repo.task_branches(config.branch)) - ours
    for task in tasks:
        branch = branch_name(config, task.id, repo.root.name)
        if branch in unknown and not repo.is_merged(branch, config.base):
            raise UsageError(
                f"branch '{branch}' (for task {task.id}) already exists with commits not in {config.base}; "
                f"merge or rename it, or drop it with `tuiorch clean --force`"
            )


def _branches_of_saved_run(repo: GitRepo) -> set[str]:
    from tuiorch.state import StateError, load_state

    try:
        state = load_state(repo.git_dir) or {}
    except StateError:
        state = {}  # the run reports the corrupt file itself and starts without it
    return {str(data.get("branch")) for data in state.get("tasks", {}).values() if data.get("branch")}


def refuse_if_running(repo: GitRepo) -> None:
    """Before anything is touched: one orchestrator per repository (the engine holds the lock itself)."""
    from tuiorch.runlock import RunLock

    holder = RunLock(repo.git_dir).holder()
    if holder is not None:
        raise UsageError(
            f"another tuiorch (pid {holder}) is running on this repository; wait for it to finish or stop it first"
        )
