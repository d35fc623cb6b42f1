"""What a task changed, as data for the review screen: against its merge base with base, from its
branch, its worktree (uncommitted and untracked files included) or the merge commit that landed it."""

from __future__ import annotations

from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, DiffOption

from tuiorch.diffs import ADDED, CONTEXT, REMOVED, DiffHunk, DiffLine, FileDiff, TaskDiff
from tuiorch.git.errors import GitError

#: The review screen shows at most this many diff lines of a task (the counts are always whole).
DIFF_MAX_LINES = 20_000
_DIFF_KINDS = {" ": CONTEXT, "+": ADDED, "-": REMOVED}
_DELTA_STATUS = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.UNTRACKED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
    DeltaStatus.TYPECHANGE: "type changed",
}


def task_diff(
    git_dir: Path,
    base: str,
    *,
    branch: str | None = None,
    worktree: Path | None = None,
    commit: str | None = None,
    max_lines: int = DIFF_MAX_LINES,
) -> TaskDiff:
    """What a task changed against its merge base with `base`.

    `commit`: a merge commit that landed (its first parent to it). `worktree`: the agent's checkout,
    uncommitted and untracked files included. `branch`: the branch's tip. Not under the repository
    lock, on a handle of its own: a review never waits behind a merge or a checkout.
    """
    try:
        repo = pygit2.Repository(str(git_dir))
        if commit is not None:
            diff, source = _of_commit(repo, commit)
        elif worktree is not None:
            diff, source = _of_worktree(repo, base, worktree)
        elif branch is not None:
            diff, source = _of_branch(repo, base, branch)
        else:
            raise GitError("nothing to compare: no branch, worktree or commit")
        return TaskDiff(base=base, source=source, files=tuple(_file_diffs(diff, max_lines)))
    except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
        raise GitError(f"cannot read the changes: {exc}") from exc


def _of_commit(repo: pygit2.Repository, commit: str) -> tuple[pygit2.Diff, str]:
    merge = repo[pygit2.Oid(hex=commit)].peel(pygit2.Commit)
    if not merge.parents:
        raise GitError(f"{commit[:7]} has no parent to compare with")
    return repo.diff(merge.parents[0].tree, merge.tree), f"merged as {commit[:7]}"


def _of_worktree(repo: pygit2.Repository, base: str, worktree: Path) -> tuple[pygit2.Diff, str]:
    base_tip = repo.references[f"refs/heads/{base}"].peel(pygit2.Commit).id
    wt_repo = pygit2.Repository(str(worktree))
    head = wt_repo.head.peel(pygit2.Commit).id
    since = repo.merge_base(base_tip, head) or base_tip
    flags = (
        DiffOption.NORMAL
        | DiffOption.INCLUDE_UNTRACKED
        | DiffOption.RECURSE_UNTRACKED_DIRS
        | DiffOption.SHOW_UNTRACKED_CONTENT
    )
    diff = wt_repo[since].peel(pygit2.Tree).diff_to_workdir(flags)
    return diff, f"{wt_repo.head.shorthand} + uncommitted work"


def _of_branch(repo: pygit2.Repository, base: str, branch: str) -> tuple[pygit2.Diff, str]:
    base_tip = repo.references[f"refs/heads/{base}"].peel(pygit2.Commit).id
    tip = repo.references[f"refs/heads/{branch}"].peel(pygit2.Commit)
    since = repo.merge_base(base_tip, tip.id) or base_tip
    return repo.diff(repo[since].peel(pygit2.Tree), tip.tree), f"branch {branch}"


def _file_diffs(diff: pygit2.Diff, max_lines: int) -> list[FileDiff]:
    """A pygit2 diff as FileDiffs; past `max_lines` lines in all, hunks are left out (counts stay whole)."""
    files: list[FileDiff] = []
    budget = max_lines
    for patch in diff:
        if patch is None:
            continue
        file_diff = _file_diff(patch, budget)
        budget -= sum(len(h.lines) for h in file_diff.hunks)
        files.append(file_diff)
    return files


def _file_diff(patch: pygit2.Patch, budget: int) -> FileDiff:
    """One file's patch, its hunks within `budget` lines."""
    delta = patch.delta
    _context, added, removed = patch.line_stats
    hunks, truncated = ([], False) if delta.is_binary else _hunks(patch, budget)
    return FileDiff(
        path=delta.new_file.path or delta.old_file.path,
        status=_DELTA_STATUS.get(delta.status, "modified"),
        added=added,
        removed=removed,
        hunks=tuple(hunks),
        binary=delta.is_binary,
        old_path=delta.old_file.path if delta.old_file.path != delta.new_file.path else None,
        truncated=truncated,
    )


def _hunks(patch: pygit2.Patch, budget: int) -> tuple[list[DiffHunk], bool]:
    """A patch's hunks within `budget` lines, and whether some were cut."""
    hunks: list[DiffHunk] = []
    for hunk in patch.hunks:
        if budget <= 0:
            return hunks, True
        lines, cut = _hunk_lines(hunk, budget)
        # one huge hunk is cut too, not only the hunks after it
        hunks.append(DiffHunk(hunk.header.rstrip("\n"), tuple(lines)))
        if cut:
            return hunks, True
        budget -= len(lines)
    return hunks, False


def _hunk_lines(hunk: pygit2.DiffHunk, budget: int) -> tuple[list[DiffLine], bool]:
    """A hunk's lines, at most `budget` of them, and whether some were cut."""
    lines: list[DiffLine] = []
    for line in hunk.lines:
        if line.origin not in _DIFF_KINDS:
            continue
        if len(lines) >= budget:
            return lines, True
        lines.append(_diff_line(line))
    return lines, False


def _diff_line(line: pygit2.DiffLine) -> DiffLine:
    return DiffLine(
        _DIFF_KINDS[line.origin],
        line.old_lineno if line.old_lineno >= 0 else None,
        line.new_lineno if line.new_lineno >= 0 else None,
        line.content.rstrip("\r\n"),
    )
