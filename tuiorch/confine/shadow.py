"""A confined agent's own git repository, and bringing its commits back.

The agent's worktree is a linked worktree of the user's repository, but inside the sandbox its `.git` names
a private git directory instead: a repository of the agent's own that borrows the user's objects read-only
(`objects/info/alternates`) and starts with the task branch where the attempt starts (and the base branch,
for `git log main..`). Whatever git command the agent runs, it changes only that private repository: the
user's refs, objects, config and checkout are on the read-only side of the sandbox.

When the agent ends, tuiorch fetches the task branch from the private repository into a quarantine ref,
checks that it still descends from the commit the attempt started from, and only then moves the task
branch (compare-and-swap). Nothing else the agent did to its repository (other branches, tags, rewritten
history, a pruned object store) reaches the user's repository.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tuiorch.git.errors import GitError
from tuiorch.git.proc import clean_env, with_task_worktree_config

__all__ = [
    "Collected",
    "Shadow",
    "branch_stamp",
    "carry_state",
    "follow_branch",
    "prepare_shadow",
    "remove_shadow",
    "take_branch",
]

#: Where private repositories live, under the user's common git directory.
SHADOW_FOLDER = ("tuiorch", "confined")
#: Files of a worktree's own git state that the private repository starts with (a resolver agent finds
#: the merge in progress, conflicted index and all).
_WORKTREE_STATE = (
    "index",
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "AUTO_MERGE",
    "ORIG_HEAD",
    "config.worktree",
)
#: Quarantine for fetched work, never a branch.
INCOMING = "refs/tuiorch/incoming/"


@dataclass(frozen=True)
class Shadow:
    """One attempt's private repository."""

    root: Path
    #: The private git directory (writable in the sandbox) and the gitfile bound over `<worktree>/.git`.
    git_dir: Path
    gitfile: Path
    worktree: Path
    branch: str
    #: The task branch's tip when the attempt started: the agent's work must descend from it.
    start: str
    #: The worktree's own git state folder in the user's repository (HEAD, index, a merge in progress).
    admin: Path


@dataclass(frozen=True)
class Collected:
    tip: str
    #: The agent moved its branch (its commits were taken).
    moved: bool
    #: Why nothing was taken although the agent may have worked (shown to the user), or "".
    note: str = ""


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=with_task_worktree_config(clean_env()),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise GitError(f"git {args[0]} failed in {cwd}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def prepare_shadow(worktree: Path, branch: str, base: str, key: str) -> Shadow:
    """Make the private repository for an attempt in `worktree` (on `branch`), replacing any earlier one."""
    found = _git(
        worktree, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
        "--git-path", "hooks", f"refs/heads/{branch}", f"refs/heads/{base}",
    ).stdout.split("\n")  # fmt: skip
    admin, common, hooks, start, base_tip = (Path(found[0]), Path(found[1]), found[2], found[3], found[4])
    root = common.joinpath(*SHADOW_FOLDER, key)
    if root.exists():
        shutil.rmtree(root)
    git_dir = root / "git"
    for sub in ("objects/info", "objects/pack", "refs/tags", "info"):
        (git_dir / sub).mkdir(parents=True)
    (git_dir / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    (git_dir / "objects/info/alternates").write_text(f"{common / 'objects'}\n")
    _write_ref(git_dir, branch, start)
    if base != branch:
        _write_ref(git_dir, base, base_tip)
    (git_dir / "config").write_text(_config_text(common, hooks))
    for name, source in (("info/exclude", common / "info/exclude"), ("shallow", common / "shallow")):
        if source.is_file():
            shutil.copyfile(source, git_dir / name)
    for name in _WORKTREE_STATE:
        if (admin / name).is_file():
            shutil.copyfile(admin / name, git_dir / name)
    gitfile = root / "gitfile"
    gitfile.write_text(f"gitdir: {git_dir}\n")
    return Shadow(
        root=root,
        git_dir=git_dir,
        gitfile=gitfile,
        worktree=worktree,
        branch=branch,
        start=start,
        admin=admin,
    )


def _write_ref(git_dir: Path, branch: str, sha: str) -> None:
    path = git_dir / "refs" / "heads" / branch
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{sha}\n")


def _config_text(common: Path, hooks: str) -> str:
    """The user's config (included, read-only), the repository format it needs, and its hooks."""
    fmt = subprocess.run(
        ["git", "config", "--file", str(common / "config"), "--get-regexp",
         r"^(core\.repositoryformatversion|extensions\.)"],
        capture_output=True, text=True, check=False, env=clean_env(),
    ).stdout.splitlines()  # fmt: skip
    settings = dict(line.partition(" ")[::2] for line in fmt)
    lines = ["[core]", f"\trepositoryformatversion = {settings.pop('core.repositoryformatversion', '0')}"]
    if settings:
        lines.append("[extensions]")
        lines += [f"\t{key.removeprefix('extensions.')} = {value}" for key, value in settings.items()]
    # Included first, so that the settings after it win: the user's identity, signing, filters and the
    # rest apply to the agent's commits as in any of the user's worktrees, and so do the user's hooks.
    lines += [
        "[include]", f"\tpath = {common / 'config'}",
        "[core]", "\tbare = false", "\tlogAllRefUpdates = true", f"\thooksPath = {hooks}",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def branch_stamp(shadow: Shadow) -> tuple[int, ...]:
    """Changes whenever the agent may have moved its branch (its ref file or packed refs), cheaply."""
    stamp: list[int] = []
    for path in (shadow.git_dir / "refs" / "heads" / shadow.branch, shadow.git_dir / "packed-refs"):
        try:
            info = path.stat()
        except OSError:
            stamp += [0, 0, 0]
            continue
        stamp += [info.st_mtime_ns, info.st_size, info.st_ino]
    return tuple(stamp)


def take_branch(shadow: Shadow, task_id: str, current: str) -> Collected:
    """Bring the agent's commits on its task branch into the user's repository, verified.

    The branch is fetched into a quarantine ref and must descend from the attempt's start; then the task
    branch moves to it from exactly `current`, its tip as tuiorch last set it (compare-and-swap). Raises
    GitError when the agent's branch no longer holds the attempt's start (its history was rewritten).
    """
    incoming = INCOMING + task_id
    fetched = _git(
        shadow.worktree, "-c", "protocol.file.allow=always", "fetch", "--quiet", "--no-tags",
        "--no-write-fetch-head", "--no-recurse-submodules", str(shadow.git_dir),
        f"+refs/heads/{shadow.branch}:{incoming}", check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        note = f"the agent's branch {shadow.branch} could not be read from its repository; its commits were not taken"
        return Collected(tip=current, moved=False, note=note)
    try:
        tip = _git(shadow.worktree, "rev-parse", "--verify", f"{incoming}^{{commit}}").stdout.strip()
        if tip == current:
            return Collected(tip=tip, moved=False)
        if _git(shadow.worktree, "merge-base", "--is-ancestor", shadow.start, tip, check=False).returncode:
            raise GitError(
                f"the agent rewrote its branch {shadow.branch}: {tip[:12]} does not descend from "
                f"{shadow.start[:12]}, where the attempt started; its commits were not taken"
            )
        _git(shadow.worktree, "update-ref", "-m", "tuiorch: the confined agent's commits",
             f"refs/heads/{shadow.branch}", tip, current)  # fmt: skip
        return Collected(tip=tip, moved=True)
    finally:
        _git(shadow.worktree, "update-ref", "-d", incoming, check=False)


def follow_branch(shadow: Shadow) -> None:
    """The worktree's index (and any merge in progress) now follow the moved branch; files stay as they are."""
    _git(shadow.worktree, "reset", "--quiet")


#: What a git operation left half done in a repository: its markers (any one means one is in progress) and
#: the state a worktree needs for git (and tuiorch) to see it as the agent left it.
_OPERATION_MARKERS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")
_OPERATION_STATE = (*_OPERATION_MARKERS, "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE", "REBASE_HEAD", "index")


def carry_state(shadow: Shadow, task_id: str) -> None:
    """Give the worktree the agent's HEAD and half-done operation where it left its own repository on a
    detached HEAD or in the middle of a merge, rebase, cherry-pick or revert: tuiorch then keeps the
    worktree for the user as it does for an unconfined agent, never committing conflict markers. The
    commits involved are fetched (into a quarantine namespace, dropped after); no branch moves."""
    detached = not _on_branch(shadow.git_dir)
    busy = any((shadow.git_dir / name).exists() for name in _OPERATION_MARKERS)
    if not detached and not busy:
        return
    quarantine = f"{INCOMING}{task_id}-state"
    fetched = _git(
        shadow.worktree, "-c", "protocol.file.allow=always", "fetch", "--quiet", "--no-tags",
        "--no-write-fetch-head", "--no-recurse-submodules", str(shadow.git_dir),
        f"+HEAD:{quarantine}/HEAD", f"+refs/heads/*:{quarantine}/heads/*", check=False,
    )  # fmt: skip
    try:
        if detached and fetched.returncode == 0:
            _detach_at(shadow.worktree, f"{quarantine}/HEAD")
        if busy:
            _copy_operation_state(shadow)
    finally:
        _delete_refs_under(shadow.worktree, f"{quarantine}/")


def _on_branch(git_dir: Path) -> bool:
    """True if the repository's HEAD names a branch (False for a detached or missing HEAD)."""
    head_file = git_dir / "HEAD"
    return head_file.exists() and head_file.read_text(errors="replace").strip().startswith("ref:")


def _detach_at(worktree: Path, ref: str) -> None:
    """Detach the worktree's HEAD at the commit `ref` names, its index following; files stay."""
    sha = _git(worktree, "rev-parse", "--verify", f"{ref}^{{commit}}").stdout.strip()
    _git(worktree, "update-ref", "--no-deref", "-m", "tuiorch: where the agent left HEAD", "HEAD", sha)
    _git(worktree, "reset", "--quiet")


def _copy_operation_state(shadow: Shadow) -> None:
    """Copy the agent's half-done operation (its markers, messages and index) into the worktree's git dir."""
    for name in _OPERATION_STATE:
        source, target = shadow.git_dir / name, shadow.admin / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copyfile(source, target)


def _delete_refs_under(worktree: Path, prefix: str) -> None:
    refs = _git(worktree, "for-each-ref", "--format=%(refname)", prefix, check=False).stdout
    for ref in refs.split():
        _git(worktree, "update-ref", "-d", ref, check=False)


def remove_shadow(shadow: Shadow) -> None:
    shutil.rmtree(shadow.root, ignore_errors=True)
