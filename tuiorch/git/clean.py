"""`tuiorch clean`: remove tuiorch's worktrees and task branches, keeping whatever holds work."""

from __future__ import annotations

import shutil
from pathlib import Path

from tuiorch.git.branches import Branches
from tuiorch.git.refs import Refs
from tuiorch.git.worktrees import Worktrees


def clean(
    refs: Refs,
    worktrees: Worktrees,
    branches: Branches,
    base: str,
    branch_template: str,
    worktree_dir: Path,
    *,
    force: bool = False,
) -> list[str]:
    """Remove tuiorch's worktrees under worktree_dir and task branches; return what was done, a line each.

    A branch with commits not in base is kept (and named) unless force; then the dropped commits are listed.
    """
    report: list[str] = []
    kept = _clean_worktrees(worktrees, worktree_dir, force, report)
    worktrees.prune()
    _clean_branches(refs, branches, base, branch_template, set(kept), force, report)
    return report or ["nothing to clean"]


def _clean_worktrees(worktrees: Worktrees, worktree_dir: Path, force: bool, report: list[str]) -> list[Path]:
    """Remove the worktrees under `worktree_dir`; those kept for their uncommitted work."""
    if not worktree_dir.is_dir():
        return []
    kept: list[Path] = []
    for child in sorted(worktree_dir.iterdir()):
        if not child.is_dir():
            continue
        if _interrupted_removal(child):
            shutil.rmtree(child, ignore_errors=True)
            report.append(f"removed leftover {child}")
        elif worktrees.admin(child) is not None and not _remove_worktree(worktrees, child, force, report):
            kept.append(child.resolve())
    return kept


def _interrupted_removal(folder: Path) -> bool:
    """A worktree's folder renamed for removal, which a crash interrupted (see Worktrees.remove)."""
    return folder.name.startswith(".") and ".removing-" in folder.name


def _remove_worktree(worktrees: Worktrees, child: Path, force: bool, report: list[str]) -> bool:
    """Remove one worktree unless it holds uncommitted work (and not force); False when kept."""
    dirty = worktrees.uncommitted(child)
    if dirty and not force:
        report.append(
            f"kept worktree {child}: uncommitted work ({', '.join(dirty[:3])}"
            f"{', ...' if len(dirty) > 3 else ''}); pass --force to delete it anyway"
        )
        return False
    worktrees.remove(child)
    report.append(f"removed worktree {child}" + (" with its uncommitted work" if dirty else ""))
    return True


def _clean_branches(
    refs: Refs, branches: Branches, base: str, template: str, held: set[Path], force: bool, report: list[str]
) -> None:
    """Delete the task branches merged into base, and with `force` the others too, listing their commits."""
    base_tip = refs.tip(base)
    for branch in refs.task_branches(template):
        where = [w for w in branches.checkouts(branch) if w in held]
        if where:
            report.append(f"kept {branch}: checked out in the kept worktree {where[0]}")
        elif refs.is_merged(branch, base):
            branches.delete(branch, base=base)
            report.append(f"deleted merged branch {branch}")
        else:
            report.extend(_clean_unmerged(branches, branch, base, base_tip, force))


def _clean_unmerged(branches: Branches, branch: str, base: str, base_tip: str, force: bool) -> list[str]:
    """Delete a branch with commits not in base when forced; report lines either way."""
    dropped = branches.unmerged_commits(branch, base_tip)
    if not force:
        return [f"kept {branch}: {len(dropped)} commit(s) not in {base} (pass --force to delete it)"]
    branches.delete(branch, force=True, base=base)
    return [
        f"deleted {branch} with {len(dropped)} commit(s) not in {base}:",
        *(f"  {sha} {subject}" for sha, subject in dropped),
    ]
