"""Resolving a task's conflict with the base: by the resolver agent, or by the user in the conflict modal.

Both ways end the same: the task branch holds a commit merging the base tip into it with every
conflict resolved, and the usual landing takes it to the base from there. This module does the git
work of each step and says how it went; it never writes a task's status, emits, saves or touches the
queue, and it does not start the agent (the caller does, in the workspace this module prepares).

The resolver agent's attempt: the runner prepares its workspace (the base merged in, markers and all)
and collects its work; this module gives the prompt the conflicted files' texts (`conflict_files`)
and judges the result (`verdict`: no markers, the given base tip merged). A failed attempt's commits
are taken back off the branch with `undo_attempt`, so a merge with markers left in never lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuiorch.git import GitError, GitRepo
from tuiorch.hunks import MergeFileError, Resolution, conflict_file

Side = Literal["ours", "theirs"]
#: (path, ancestor, ours, theirs): one conflicted file's three texts, as the resolver's prompt takes them.
ConflictFile = tuple[str, str | None, str | None, str | None]


class ResolutionError(Exception):
    """A resolution step that cannot be done as asked; the message is for the user."""


@dataclass(frozen=True)
class AttemptStart:
    """What a resolver attempt was given: the conflicts and the base tip merged in."""

    #: The paths the merge of the base left in conflict; empty: nothing conflicts, no agent needed.
    conflicted: tuple[str, ...]
    #: The base tip merged in (the agent's merge must hold it), or None when no merge is in progress.
    given: str | None


@dataclass(frozen=True)
class AttemptOutcome:
    """How one resolver-agent attempt ended: resolved, or the reason it did not, in the user's words."""

    resolved: bool
    failure: str = ""

    @property
    def reason(self) -> str:
        """The line the task's row shows after a failed attempt."""
        return f"resolver agent: {self.failure}"


def resolution_message(commit_message: str, base: str, branch: str, paths: Sequence[str]) -> str:
    """The task's own commit message (subject and trailers), saying which conflicts the merge resolves."""
    subject, _, rest = commit_message.partition("\n")
    note = f"Merge {base} into {branch}; conflicts resolved in {', '.join(paths) or 'no path'}."
    rest = rest.strip("\n")
    return f"{subject}\n\n{note}" + (f"\n\n{rest}" if rest else "")


def attempt_notice(task_id: str, attempt: int, limit: int) -> str:
    return f"task {task_id}: agent resolving the conflict (attempt {attempt} of {limit})"


def gave_up_reason(paths: Sequence[str]) -> str:
    """The row's line once the resolver agent has used all its attempts."""
    return f"conflict in {', '.join(paths)}; the agent could not resolve it, over to you"


class ConflictResolver:
    """The git side of resolving one task's conflict with `base`, by agent or by hand."""

    def __init__(self, git: GitRepo, base: str) -> None:
        self.git = git
        self.base = base

    # ---------------------------------------------------------------- the resolver agent

    async def conflict_files(self, branch: str, paths: Sequence[str]) -> list[ConflictFile]:
        """(path, ancestor, ours, theirs) of each conflicted path, for the resolver's prompt."""
        files = []
        for path in paths:
            ours, theirs, ancestor = await asyncio.to_thread(self.git.conflict_sides, branch, self.base, path)
            files.append((path, ancestor, ours, theirs))
        return files

    async def verdict(self, branch: str, start: AttemptStart, marked_in_files: Sequence[str]) -> AttemptOutcome:
        """Resolved when no conflicted path holds markers, in the workspace (`marked_in_files`) or in
        what the branch committed, and the branch holds the merge of the base tip the agent was given."""
        marked = [*marked_in_files, *await asyncio.to_thread(self.git.committed_markers, branch, start.conflicted)]
        if marked:
            return AttemptOutcome(False, "conflict markers remain in " + ", ".join(sorted(set(marked))))
        if start.given and not await asyncio.to_thread(self.git.branch_contains, branch, start.given):
            return AttemptOutcome(False, f"the agent did not commit the merge of {self.base}")
        return AttemptOutcome(True)

    async def undo_attempt(self, branch: str, before: str | None, outcome: AttemptOutcome) -> AttemptOutcome:
        """Take a failed attempt's commits back off the branch; the outcome says so if that failed."""
        if before is None:
            return outcome
        try:
            await asyncio.to_thread(self.git.undo_branch, branch, before)
        except GitError as exc:
            return AttemptOutcome(False, f"{outcome.failure}; its commits stay on {branch} ({exc})")
        return outcome

    async def branch_tip(self, branch: str) -> str | None:
        return await asyncio.to_thread(self.git.branch_tip, branch)

    async def drop_worktree(self, path: Path) -> None:
        """Remove a resolution worktree; one that is gone already is fine."""
        with contextlib.suppress(GitError):
            await self.remove_worktree(path)

    async def remove_worktree(self, path: Path) -> None:
        """Remove a resolution worktree (GitError when git cannot)."""
        await asyncio.to_thread(self.git.remove_worktree, path)

    # ---------------------------------------------------------------- by hand (the conflict modal)

    def sides(self, branch: str, path: str) -> tuple[str | None, str | None, str | None]:
        """(ours, theirs, ancestor) texts of one conflicted path."""
        return self.git.conflict_sides(branch, self.base, path)

    async def prepare_manual(self, path: Path, branch: str) -> None:
        """A worktree at `path` on the branch with the base merged in, conflict markers and all."""
        await self._checkout(path, branch)
        await asyncio.to_thread(functools.partial(self.git.start_manual_merge, path, base=self.base))

    async def take_side(self, worktree: Path, path: str, side: Side) -> None:
        await asyncio.to_thread(self.git.take_side, worktree, path, side)

    async def mark_resolved(self, worktree: Path, path: str) -> None:
        """A path edited by hand is accepted once its markers are gone (GitError says they are not)."""
        await asyncio.to_thread(self.git.mark_resolved, worktree, path)

    async def finish(self, worktree: Path, message: str) -> None:
        """Commit the resolution on the branch and remove its worktree."""
        await asyncio.to_thread(self.git.finish_manual_merge, worktree, message)
        await self.remove_worktree(worktree)

    async def hunks(self, branch: str, paths: Sequence[str]) -> Resolution:
        """The conflict as hunks to choose from, pinned to the two tips it was computed from.

        No `paths`: the paths a merge would conflict in now.
        """
        paths = tuple(paths) or await asyncio.to_thread(self.git.test_merge, branch, self.base)

        def build() -> Resolution:
            base_tip, task_tip, texts = self.git.conflict_texts(branch, self.base, paths)
            files = [
                conflict_file(path, kind, ours, theirs, base, binary=binary)
                for path, kind, ours, theirs, base, binary in texts
            ]
            return Resolution(files, (self.base, branch), base_tip=base_tip, task_tip=task_tip)

        try:
            return await asyncio.to_thread(build)
        except MergeFileError as exc:
            raise ResolutionError(str(exc)) from None

    async def check_pinned(self, branch: str, resolution: Resolution) -> None:
        """Refuse a resolution that is unfinished, or made from a branch tip that has moved since."""
        if not resolution.done:
            raise ResolutionError(f"{len(resolution.open_keys())} hunks still need a choice")
        if await asyncio.to_thread(self.git.branch_tip, branch) != resolution.task_tip:
            raise ResolutionError(f"branch {branch} moved since the conflict was shown; open it again")

    async def begin_hunk_merge(self, path: Path, branch: str, resolution: Resolution) -> tuple[str, ...]:
        """The branch in a worktree at `path` merging exactly the base tip the hunks were made from;
        the paths that merge conflicts in."""
        await self._checkout(path, branch)
        conflicted = await asyncio.to_thread(
            functools.partial(self.git.start_manual_merge, path, base=self.base, commit=resolution.base_tip)
        )
        return tuple(conflicted)

    async def apply_hunks(self, path: Path, resolution: Resolution, conflicted: Sequence[str]) -> None:
        """Write the chosen hunks into the merge `begin_hunk_merge` started.

        Raises ResolutionError when that merge conflicts in paths the resolution does not cover.
        """
        for index, file in enumerate(resolution.files):
            how, value = resolution.result(index)
            if how == "side":
                await asyncio.to_thread(self.git.take_side, path, file.path, value)  # type: ignore[arg-type]
            else:
                await asyncio.to_thread(self.git.write_resolved, path, file.path, value or "")
        left = sorted(set(conflicted) - {file.path for file in resolution.files})
        if left:
            raise ResolutionError(f"also in conflict: {', '.join(left)}; open the conflict again")

    async def _checkout(self, path: Path, branch: str) -> None:
        """The branch, its commits kept, checked out in its own worktree at `path`."""
        await asyncio.to_thread(
            functools.partial(self.git.prepare_worktree, path, branch, self.base, keep_commits=True)
        )
