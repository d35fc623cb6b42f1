"""LocalRunner: agents as local processes in git worktrees of the user's repository.

Each pool slot has a warm worktree (``[slots] reuse``) that is reset between tasks and keeps its
``[slots] keep`` folders (a venv, node_modules); without reuse each task gets a worktree of its own.
A resolver works in a worktree of its own beside the task's. Every agent runs in its own process
group, marked with AGENT_MARKER in its environment so that a restarted tuiorch can end it even if
its process group was never saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from tuiorch.agent import AgentExit, AgentProcess, ProcessHooks
from tuiorch.confine.attempts import Confiner
from tuiorch.gitops import GitError, GitRepo, UncommittedWork, with_task_worktree_config
from tuiorch.procs import AGENT_MARKER, kill_orphan_agents, kill_stale_group
from tuiorch.runners.base import (
    AgentCommand,
    AgentHooks,
    AgentSpec,
    Attachment,
    Collected,
    StartFailed,
    Workspace,
    render_command,
)
from tuiorch.verdict import exit_words, exited_cleanly


class LocalRunner:
    """Runs agents on this machine, in worktrees under `worktrees` (the configured worktree folder);
    `task_folder` names a task's own folder there (a per-task worktree, a resolver's)."""

    kind = "local"

    def __init__(
        self,
        git: GitRepo,
        worktrees: Path,
        prompts: Path,
        *,
        task_folder: Callable[[str], Path] | None = None,
        reuse: bool = True,
        keep: Sequence[str] = (),
        scratch: Sequence[str] = (),
        keep_at_end: bool = False,
        slots: int = 1,
        confiner: Confiner | None = None,
    ) -> None:
        self.git = git
        #: The folder holding every worktree this runner makes (per-task ones in a subfolder per task).
        self.worktrees = Path(worktrees)
        self.task_folder = task_folder or (lambda task_id: self.worktrees / task_id)
        #: Where prompt files are written (one per task and kind).
        self.prompts = Path(prompts)
        self.reuse = reuse
        self.keep = tuple(keep)
        self.scratch = tuple(scratch)
        self.keep_at_end = keep_at_end
        self._slots = slots
        #: Puts each agent in a sandbox that lets it change only its worktree and branch (None: unconfined).
        self.confiner = confiner if confiner is not None and confiner.on else None
        #: Slot worktrees holding work that could not be committed and that git would not move away:
        #: their slot gets a new folder instead.
        self._kept: set[Path] = set()
        #: Every workspace this runner prepared in this run (removed by `close`).
        self._made: set[Path] = set()
        #: Slot worktrees given back with nothing uncommitted in them (their agent's leftovers committed):
        #: the next task there needs no search for someone's uncommitted work.
        self._left_clean: set[Path] = set()

    # -- where workspaces live ----------------------------------------------------------------------------

    def workspace_path(self, spec: AgentSpec) -> Path:
        if spec.kind == "resolve":
            return self.task_folder(spec.task_id) / f"resolve-{spec.task_id}"
        if not self.reuse:
            return self.task_folder(spec.task_id) / spec.branch
        path = self.worktrees / f"slot-{spec.slot + 1}"
        generation = 1
        while path in self._kept:
            generation += 1
            path = self.worktrees / f"slot-{spec.slot + 1}.{generation}"
        return path

    def prompt_path(self, spec: AgentSpec) -> Path:
        suffix = "-resolve" if spec.kind == "resolve" else ""
        return self.prompts / f"{spec.task_id}{suffix}.md"

    def agent_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """`env` plus what every process in a worktree gets: the marker that makes it findable after a
        crash, and git settings that keep the worktree a full checkout with an index libgit2 reads."""
        inherited = {k: v for k, v in os.environ.items() if k.startswith("GIT_CONFIG_")}
        return {
            **(env or {}),
            **with_task_worktree_config(inherited),
            AGENT_MARKER: str(self.git.git_dir.resolve()),
        }

    # -- the seam -------------------------------------------------------------------------------------

    async def start(self, spec: AgentSpec, hooks: AgentHooks) -> LocalHandle:
        path = self.workspace_path(spec)
        self._slots = max(self._slots, spec.slot + 1)
        fresh = not path.exists()
        hooks.on_placed(Attachment(runner=self.kind, workspace=str(path), confined=self.confiner is not None))
        base_sha = await self._prepare(spec, path)
        self._made.add(path)
        for ref in self.git.take_rescued():
            hooks.on_notice(f"{path} held uncommitted work; saved as {ref} before reuse")
        handle = LocalHandle(self, spec, hooks, path, base_sha)
        if spec.kind == "resolve":
            await handle.merge_base()
            if not handle.conflicted:
                return handle  # nothing to resolve any more: no command, no agent
        elif fresh and spec.setup:
            await self._set_up(spec, path)
        try:
            workspace = Workspace(path=str(path), prompt_file=str(self.prompt_path(spec)), conflicted=handle.conflicted)
            command = await render_command(spec, workspace)
            argv = await self._confine(spec, path, command)
        except BaseException:
            with contextlib.suppress(GitError, OSError):
                await handle.release()
            raise
        handle.load(command, argv)
        return handle

    async def reattach(self, saved: Attachment, spec: AgentSpec, hooks: AgentHooks) -> LocalHandle | None:
        return None  # a local agent's pipes died with the tuiorch that read them

    async def clean_up(self, saved: Attachment, *, leftovers_message: str | None = None) -> str | None:
        notice = None
        if saved.pgid and await asyncio.to_thread(kill_stale_group, saved.pgid, self.worktrees):
            notice = f"ended agent process group {saved.pgid} of the dead run"
        path = Path(saved.workspace) if saved.workspace else None
        if leftovers_message is not None and path is not None and path.exists():
            with contextlib.suppress(GitError):
                await asyncio.to_thread(self.git.commit_leftovers, path, leftovers_message)
                await asyncio.to_thread(self.git.release_worktree, path)
        return notice

    async def running(self, saved: Attachment) -> bool:
        return False  # its agents died with tuiorch, or are ended

    async def end_orphans(self, spare: Collection[str] = ()) -> list[str]:
        pgids = await asyncio.to_thread(kill_orphan_agents, self.git.git_dir)
        return [f"ended agent process group {pgid} left by the tuiorch run that stopped" for pgid in pgids]

    async def close(self) -> None:
        if self.keep_at_end:
            return
        paths = set(self._made)
        if self.reuse:
            paths |= {self.worktrees / f"slot-{slot + 1}" for slot in range(self._slots)}
        paths -= self._kept
        # In parallel: deleting several big checkouts is disk-bound.
        await asyncio.gather(*(asyncio.to_thread(self.git.remove_worktree, p) for p in paths if p.exists()))

    # -- workspace preparation ------------------------------------------------------------------------

    async def _confine(self, spec: AgentSpec, path: Path, command: AgentCommand) -> tuple[str, ...]:
        """The argv to start: the command's own, or it inside its sandbox (its private repository made)."""
        if self.confiner is None:
            return command.argv
        env = {**os.environ, **self.agent_env({**spec.env, **command.env})}
        argv = await self.confiner.enter(spec.task_id, path, spec.branch, spec.base, command.argv, env, spec.log_path)
        return tuple(argv)

    async def _prepare(self, spec: AgentSpec, path: Path) -> str:
        resolve = spec.kind == "resolve"
        prepare = functools.partial(
            self.git.prepare_worktree,
            path,
            spec.branch,
            spec.base,
            () if resolve else self.keep,
            keep_commits=spec.keep_commits,
            scratch=() if resolve else self.scratch,
            known_clean=path in self._left_clean,
        )
        self._left_clean.discard(path)
        try:
            return await asyncio.to_thread(prepare)
        except (GitError, OSError):
            if not resolve:  # half-prepared: the slot is given back as after any attempt
                with contextlib.suppress(GitError, OSError):
                    await self.leave(path, remove=not self.reuse)
            raise

    async def _set_up(self, spec: AgentSpec, path: Path) -> None:
        """[slots] setup, once in a newly made worktree (argv, never a shell); StartFailed if it fails."""
        assert spec.setup is not None
        with open(spec.log_path, "a", encoding="utf-8") as log:
            log.write(f"== setup: {shlex.join(spec.setup)} in {path} ==\n")
        process = AgentProcess(spec.setup, path, spec.log_path, timeout=spec.timeout, env=self.agent_env(dict(spec.env)))
        exit_ = await process.run()
        if exited_cleanly(exit_):
            return
        await asyncio.to_thread(self.git.remove_worktree, path)  # set up again next time
        raise StartFailed(f"slot setup `{shlex.join(spec.setup)}` {exit_words(exit_)}")

    async def leave(self, path: Path, *, remove: bool) -> None:
        if remove:
            await asyncio.to_thread(self.git.remove_worktree, path)
        else:
            await asyncio.to_thread(self.git.release_worktree, path)

    async def keep_uncommitted(self, exc: UncommittedWork, task_id: str) -> UncommittedWork:
        """Work that could not be committed stays, never reset or removed: a warm slot's worktree is
        moved out of the slot, or, if git will not move it, the slot gets a new folder instead."""
        kept = exc.worktree
        reason = str(exc)
        if self.reuse and kept.parent == self.worktrees:
            base = self.worktrees / f"kept-{kept.name}-task-{task_id}"
            target, n = base, 1
            while target.exists():
                n += 1
                target = base.with_name(f"{base.name}.{n}")
            if await asyncio.to_thread(self.git.move_worktree, kept, target):
                reason = reason.replace(str(kept), str(target))
                kept = target
            else:
                self._kept.add(kept)
        self.forget(exc.worktree)
        return UncommittedWork(reason, kept)

    def left_clean(self, path: Path) -> None:
        """The slot worktree at `path` was given back with nothing uncommitted in it."""
        self._left_clean.add(path)

    def forget(self, path: Path) -> None:
        """`path` is no longer this runner's to remove at the end (removed, or kept for its work)."""
        self._made.discard(path)


class LocalHandle:
    """One agent run in a local worktree (see `AgentHandle`)."""

    where = "local"

    def __init__(self, runner: LocalRunner, spec: AgentSpec, hooks: AgentHooks, path: Path, base_sha: str) -> None:
        self.runner = runner
        self.confined = runner.confiner is not None
        self.spec = spec
        self.hooks = hooks
        self.path = path
        self.workspace = str(path)
        self.base_sha = base_sha
        self.conflicted: tuple[str, ...] = ()
        self._process: AgentProcess | None = None
        self._cancelled = False
        self._released = False
        #: The agent's leftovers were committed: nothing uncommitted is left in the worktree.
        self._committed = False

    def load(self, command: AgentCommand, argv: tuple[str, ...]) -> None:
        """Write the prompt and make the (not yet started) process for `command`, run as `argv`."""
        spec = self.spec
        prompt_file = self.runner.prompt_path(spec)
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(command.prompt, encoding="utf-8")
        self._process = AgentProcess(
            argv,
            self.path,
            spec.log_path,
            env=self.runner.agent_env({**spec.env, **command.env}),
            hooks=ProcessHooks(
                on_lines=self.hooks.on_lines,
                on_stderr=self.hooks.on_stderr,
                on_stuck=self.hooks.on_stuck,
                on_unstuck=self.hooks.on_unstuck,
                on_spawn=lambda _pgid: self.hooks.on_started(self.attachment()),
            ),
            stdin_path=prompt_file if command.prompt_on_stdin else None,
            timeout=spec.timeout,
            stuck_after=spec.stuck_after,
            watch_dir=self.path,
        )
        if self._cancelled:
            self._process.cancel()

    async def merge_base(self) -> None:
        """kind "resolve": merge the base into the branch here, conflicts and all."""
        git = self.runner.git
        self.conflicted = await asyncio.to_thread(
            functools.partial(git.start_manual_merge, self.path, base=self.spec.base, message=self.spec.merge_message)
        )
        # What the resolution must contain: the base commit merged in.
        self.base_sha = await asyncio.to_thread(git.merge_head, self.path) or ""

    async def wait(self) -> AgentExit:
        if self._process is None:
            raise RuntimeError("no agent to wait for: nothing is in conflict any more")
        confiner = self.runner.confiner
        if confiner is None:
            return await self._process.run()
        try:
            exit_ = await self._process.run()
        except BaseException:
            await confiner.collect(self.spec.task_id, quiet=True)
            raise
        # The agent's commits come over from its private repository (GitError if it rewrote history).
        if note := await confiner.collect(self.spec.task_id):
            self.hooks.on_warning(f"task {self.spec.task_id}: {note}")
        return exit_

    def cancel(self) -> None:
        self._cancelled = True
        if self._process is not None:
            self._process.cancel()

    async def collect(self, message: str, *, failed: bool) -> Collected:
        git = self.runner.git
        markers: tuple[str, ...] = ()
        if self.spec.kind == "resolve":
            markers = await self._finish_resolution(message)
        else:
            try:
                await asyncio.to_thread(git.commit_leftovers, self.path, message, self.spec.branch, self.runner.scratch)
                self._committed = True
            except UncommittedWork as exc:
                self._released = True
                raise await self.runner.keep_uncommitted(exc, self.spec.task_id) from exc
            except GitError:
                if not failed:
                    raise
        tip = await asyncio.to_thread(git.branch_tip, self.spec.branch)
        has_new = False
        if tip is not None and self.base_sha:
            with contextlib.suppress(GitError):
                has_new = await asyncio.to_thread(git.has_new_commits, self.spec.branch, self.base_sha)
        return Collected(tip=tip, has_new_commits=has_new, markers=markers)

    async def _finish_resolution(self, message: str) -> tuple[str, ...]:
        git = self.runner.git
        # Stage each path the agent freed of markers (told to leave staging to tuiorch, or forgot it).
        for path in self.conflicted:
            with contextlib.suppress(GitError):
                await asyncio.to_thread(git.mark_resolved, self.path, path)
        try:
            # Commits the resolution when the agent left it uncommitted (its sandbox may forbid committing).
            await asyncio.to_thread(git.finish_manual_merge, self.path, message)
        except GitError as exc:
            if "no merge in progress" not in str(exc):
                raise
        return tuple(await asyncio.to_thread(git.files_with_markers, self.path, self.conflicted))

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.runner.confiner is not None and self._process is not None and self._process.pid is None:
            # Stopped before its agent ran: its sandbox's private repository is given up.
            await self.runner.confiner.collect(self.spec.task_id, quiet=True)
        remove = self.spec.kind == "resolve" or not self.runner.reuse
        if remove:
            self.runner.forget(self.path)
        await self.runner.leave(self.path, remove=remove)
        if self._committed and not remove:
            self.runner.left_clean(self.path)

    def attachment(self) -> Attachment:
        pgid = self._process.pgid if self._process is not None else None
        return Attachment(runner=LocalRunner.kind, workspace=self.workspace, pgid=pgid)

