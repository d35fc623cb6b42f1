"""Where each working tree of a repository stands: the branch it has in hand (checked out, or being
rebased or bisected with HEAD detached meanwhile) and any operation of the user's under way there."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

#: The user's own operations that own base while they run, by the file or directory that marks them.
_OPERATIONS = (
    ("rebase-merge", "rebase", "git rebase --continue, or --abort"),
    ("rebase-apply/applying", "git am", "git am --continue, or --abort"),
    ("rebase-apply", "rebase", "git rebase --continue, or --abort"),
    ("MERGE_HEAD", "merge", "commit it, or git merge --abort"),
    ("CHERRY_PICK_HEAD", "cherry-pick", "git cherry-pick --continue, or --abort"),
    ("REVERT_HEAD", "revert", "git revert --continue, or --abort"),
    ("sequencer", "cherry-pick or revert sequence", "git cherry-pick --continue, or --quit"),
    ("BISECT_START", "bisect", "git bisect reset"),
)


@dataclass(frozen=True)
class Checkout:
    """A working tree (primary or linked) and its own git dir (where HEAD, index and operations live)."""

    workdir: Path
    gitdir: Path


def head_ref(gitdir: Path) -> str | None:
    """The branch HEAD is attached to (refs/heads/...), or None when it is detached or unreadable."""
    text = _text_in(gitdir / "HEAD")
    if text is None or not text.startswith("ref:"):
        return None
    return text.removeprefix("ref:").strip()


def branch_in_hand(gitdir: Path) -> str | None:
    """The branch this working tree has checked out, or is rebasing or bisecting (HEAD detached meanwhile)."""
    attached = head_ref(gitdir)
    if attached is not None:
        return attached
    return _rebased_branch(gitdir) or _bisected_branch(gitdir)


def _rebased_branch(gitdir: Path) -> str | None:
    """The branch a rebase (or git am) under way works on."""
    for name in ("rebase-merge/head-name", "rebase-apply/head-name"):
        text = _text_in(gitdir / name)
        if text is not None and text.startswith("refs/"):
            return text
    return None


def _bisected_branch(gitdir: Path) -> str | None:
    """The branch (or commit) a bisect under way started from."""
    started = _text_in(gitdir / "BISECT_START")
    if not started:
        return None
    return started if started.startswith("refs/") else f"refs/heads/{started}"


def _text_in(path: Path) -> str | None:
    """The file's text without surrounding whitespace, or None when it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def operation_in_progress(gitdir: Path) -> tuple[str, str] | None:
    """(what, how to finish it) for a rebase, am, merge, cherry-pick, revert or bisect under way."""
    for marker, what, finish in _OPERATIONS:
        if (gitdir / marker).exists():
            return what, finish
    return None


def all_checkouts(common_dir: Path, primary: Path | None) -> list[Checkout]:
    """The primary working tree (if any) and every linked worktree whose directory exists."""
    found = [Checkout(primary, common_dir)] if primary is not None else []
    worktrees = common_dir / "worktrees"
    if worktrees.is_dir():
        found += filter(None, (_linked_checkout(admin) for admin in sorted(worktrees.iterdir())))
    return found


def _linked_checkout(admin: Path) -> Checkout | None:
    """The linked worktree `admin` (its folder in the common git dir) describes, if its directory exists."""
    gitdir_file = admin / "gitdir"
    if not gitdir_file.is_file():
        return None
    with contextlib.suppress(OSError):
        workdir = Path(gitdir_file.read_text().strip()).parent
        if workdir.is_dir():
            return Checkout(workdir.resolve(), admin)
    return None


def find_checkouts(common_dir: Path, primary: Path | None, refname: str) -> list[Checkout]:
    """Working trees whose branch in hand (checked out, being rebased or bisected) is `refname`."""
    return [c for c in all_checkouts(common_dir, primary) if branch_in_hand(c.gitdir) == refname]
