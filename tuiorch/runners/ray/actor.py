"""The agent actor: one attempt of one task on a Ray node, from checkout to result bundle.

A plain class here; the runner makes it a detached named Ray actor, so it outlives a tuiorch killed -9
and a new tuiorch re-attaches by name. Everything the agent prints is buffered as numbered events and
served by `stream(offset)`, a streaming generator: a re-attached tuiorch asks from where it stopped and
misses nothing. The agent itself runs under tuiorch's own supervisor (process group, timeout, stuck),
with a keeper process that ends its group should this worker die.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuiorch.agent import STDERR_MARK, AgentProcess, ProcessHooks
from tuiorch.confine.bwrap import bubblewrap_problem
from tuiorch.confine.sandbox import ConfinedRun, Sandbox
from tuiorch.git.errors import GitError
from tuiorch.runners.ray import nodegit

#: Event kinds in the stream: ("out", [lines]) ("err", [lines]) ("stuck", idle) ("unstuck", None)
#: ("tip", sha) when the branch gains commits, and ("exit", {...}) last.
Event = tuple[str, Any]
#: How often the branch's tip is looked at while the agent runs (new commits are fetched centrally).
TIP_POLL = 1.0


class AgentActor:
    def __init__(self, key: str) -> None:
        self.repo = nodegit.NodeRepo(key)
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.process: AgentProcess | None = None
        self.runner: asyncio.Task[None] | None = None
        self.workspace = ""
        self.branch = ""
        self.start_sha = ""
        self.done = False
        #: The agent's sandbox and private repository, when it runs confined.
        self.confined: ConfinedRun | None = None
        #: A resolver's run: (paths left in conflict, the merge's message).
        self.resolving: tuple[list[str], str] | None = None

    # -- the node -------------------------------------------------------------------------------------------

    def node(self) -> dict[str, Any]:
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": platform.node(),
            "dir": str(self.repo.root),
            "tips": self.repo.tips(),
        }

    def sandbox_problem(self) -> str | None:
        """None when bubblewrap can confine an agent on this node; else what is wrong."""
        return bubblewrap_problem()

    async def prepare(
        self,
        bundle: bytes | None,
        ship_ref: str,
        start: str,
        slot: int,
        branch: str,
        keep: Sequence[str],
        setup: Sequence[str] | None,
        env: Mapping[str, str],
    ) -> dict[str, Any]:
        """Bring `start` into the cache, the slot's worktree onto `branch` at it, [slots] setup if new."""
        prepared = await asyncio.to_thread(self._prepare, bundle, ship_ref, start, slot, branch, keep)
        self.workspace, self.branch, self.start_sha = prepared.workspace, branch, start
        result: dict[str, Any] = {
            "workspace": prepared.workspace,
            "fresh": prepared.fresh,
            "setup": None,
            "prompt_file": self.prompt_file(),
        }
        if prepared.fresh and setup:
            result["setup"] = await asyncio.to_thread(_run_setup, list(setup), prepared.workspace, env)
            if result["setup"]["code"] != 0:
                await asyncio.to_thread(self.repo.remove_slot, slot)  # set up again next time
        return result

    def _prepare(
        self, bundle: bytes | None, ship_ref: str, start: str, slot: int, branch: str, keep: Sequence[str]
    ) -> nodegit.Prepared:
        with self.repo.locked():
            self.repo.ensure()
            self.repo.receive(bundle, ship_ref)
            if not self.repo.has_commit(start):
                raise nodegit.NodeGitError(f"the start commit {start[:10]} did not reach the node")
            return self.repo.prepare_slot(slot, branch, start, keep)

    async def merge_in(self, base: str, message: str, identity: Mapping[str, str]) -> list[str]:
        """A resolver's workspace: `base` merged into the branch uncommitted, conflicts left for the agent."""
        conflicted = await asyncio.to_thread(nodegit.merge_in, self.workspace, base, message, dict(identity))
        self.resolving = (conflicted, message)
        return conflicted

    # -- the agent ------------------------------------------------------------------------------------------

    async def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        prompt: str,
        prompt_on_stdin: bool,
        timeout: float | None,
        stuck_after: float | None,
        confine: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Start the agent in the prepared workspace (in its sandbox when `confine` says how); returns its
        process group id (None: it could not)."""
        prompt_file = Path(self.prompt_file())
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(prompt, encoding="utf-8")
        if confine is not None:
            argv = await asyncio.to_thread(self._confine, argv, env, confine)
        log = self.repo.root / "logs" / f"{os.path.basename(self.workspace)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        spawned = asyncio.get_running_loop().create_future()
        self.process = AgentProcess(
            argv,
            self.workspace,
            log,
            env=env,
            hooks=ProcessHooks(
                on_lines=lambda lines: self._event("out", list(lines)),
                on_stderr=lambda lines: self._event("err", list(lines)),
                on_stuck=lambda idle: self._event("stuck", idle),
                on_unstuck=lambda: self._event("unstuck", None),
                on_spawn=lambda pgid: self._spawned(pgid, spawned),
            ),
            stdin_path=prompt_file if prompt_on_stdin else None,
            timeout=timeout,
            stuck_after=stuck_after,
        )
        self.runner = asyncio.create_task(self._run(spawned))
        return await spawned

    def _confine(self, argv: Sequence[str], env: Mapping[str, str], confine: Mapping[str, Any]) -> list[str]:
        """The agent's argv inside its sandbox: it writes only its worktree and its private repository
        (its commits reach the slot's branch through `sync`); the cache, the other slots and the rest of
        the node dir stay visible, read-only, even under a private /tmp."""
        writable = tuple(Path(os.path.expanduser(path)) for path in confine["writable"])
        sandbox = Sandbox(preset=confine["preset"], writable=writable)
        self.confined = sandbox.enter(
            Path(self.workspace), self.branch, self.branch, self._key(), argv, {**os.environ, **env},
            visible=(self.repo.root.parent,),
        )  # fmt: skip
        return self.confined.argv

    def _key(self) -> str:
        """The slot's name for its private repository and quarantine ref (one agent per slot at a time)."""
        return f"slot-{os.path.basename(self.workspace)}"

    def prompt_file(self) -> str:
        """Where the prompt is written on the node (the command is rendered with this path)."""
        return str(self.repo.root / "prompts" / f"{os.path.basename(self.workspace)}.md")

    def _spawned(self, pgid: int, spawned: asyncio.Future[int | None]) -> None:
        # Started in its own session: Ray would not end it if this worker died; the keeper does.
        subprocess.run(
            [sys.executable, "-m", "tuiorch.runners.ray.keeper", str(os.getpid()), str(pgid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            check=False,
        )
        if not spawned.done():
            spawned.set_result(pgid)

    async def _run(self, spawned: asyncio.Future[int | None]) -> None:
        assert self.process is not None
        watcher = asyncio.create_task(self._watch_tip())
        try:
            exit_ = await self.process.run()
            outcome = {
                "code": exit_.code,
                "signal": exit_.signal,
                "timed_out": exit_.timed_out,
                "cancelled": exit_.cancelled,
                "error": exit_.error,
            }
        except Exception as exc:  # the supervisor itself failed: say so as the run's end
            outcome = {
                "code": None,
                "signal": None,
                "timed_out": False,
                "cancelled": False,
                "error": str(exc),
            }
        finally:
            watcher.cancel()
        if not spawned.done():
            spawned.set_result(None)
        self.done = True
        self._event("exit", outcome)

    async def _watch_tip(self) -> None:
        last = await asyncio.to_thread(nodegit.tip, self.workspace, self.branch)
        while True:
            await asyncio.sleep(TIP_POLL)
            if self.confined is not None:  # a confined agent commits in its private repository
                await asyncio.to_thread(self.confined.sync, self._key())
            try:
                now = await asyncio.to_thread(nodegit.tip, self.workspace, self.branch)
            except nodegit.NodeGitError:
                continue  # mid-commit, or the agent left its branch: looked at again at the end
            if now != last:
                last = now
                self._event("tip", now)

    def _event(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self.changed.set()

    async def stream(self, offset: int = 0) -> AsyncIterator[list[Event]]:
        """Events from `offset` on, in bursts, until the exit event has been sent."""
        while True:
            if offset < len(self.events):
                burst = self.events[offset:]
                offset += len(burst)
                yield burst
                continue
            if self.done:
                return
            self.changed.clear()
            await self.changed.wait()

    def cancel(self) -> None:
        """End the agent's whole process group (SIGTERM, then SIGKILL after the grace period)."""
        if self.process is not None:
            self.process.cancel()

    async def end(self, grace: float = 10.0) -> bool:
        """Cancel the agent and wait (up to `grace` seconds) until its tree is gone; whether it is."""
        self.cancel()
        if self.process is None:
            return True
        deadline = asyncio.get_running_loop().time() + grace
        while not self.done and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return self.done

    def status(self) -> dict[str, Any]:
        return {
            "events": len(self.events),
            "done": self.done,
            "pgid": self.process.pgid if self.process else None,
            "workspace": self.workspace,
            "branch": self.branch,
            "start": self.start_sha,
            "confined": self.confined is not None,
        }

    # -- the result -----------------------------------------------------------------------------------------

    async def collect(
        self, message: str, identity: Mapping[str, str], scratch: Sequence[str], exclude: Sequence[str]
    ) -> dict[str, Any]:
        """Commit leftovers, then a bundle of the branch without `exclude` (what the centre has)."""
        return await asyncio.to_thread(self._collect, message, dict(identity), list(scratch), list(exclude))

    def _collect(
        self, message: str, identity: dict[str, str], scratch: list[str], exclude: list[str]
    ) -> dict[str, Any]:
        uncommitted, markers = None, []
        refused = self._take_confined()
        if refused:
            return {"tip": None, "bundle": None, "uncommitted": None, "markers": [], "refused": refused}
        if self.resolving is not None:
            markers = nodegit.finish_resolution(
                self.workspace, self.resolving[0], self.resolving[1], identity
            )
        try:
            if not markers:  # a merge still marked is never committed: it stays on the node
                nodegit.commit_leftovers(self.workspace, message, self.branch, identity, scratch)
        except nodegit.NodeGitError as exc:
            uncommitted = str(exc)
        head = nodegit.tip(self.workspace, self.branch)
        return {
            "tip": head,
            "bundle": nodegit.result_bundle(self.workspace, self.branch, exclude),
            "uncommitted": uncommitted,
            "markers": markers,
        }

    def _take_confined(self) -> str:
        """A confined agent's commits onto the slot's branch, verified; why they were refused, or ""."""
        run, self.confined = self.confined, None
        if run is None:
            return ""
        try:
            run.collect(self._key())
        except GitError as exc:
            return str(exc)
        return ""

    async def bundle_since(self, exclude: Sequence[str]) -> bytes | None:
        """The branch's commits the centre lacks (taken while the agent still runs)."""
        return await asyncio.to_thread(self._bundle_since, list(exclude))

    def _bundle_since(self, exclude: list[str]) -> bytes | None:
        if self.confined is not None:  # what it committed since the last look first
            self.confined.sync(self._key())
        return nodegit.result_bundle(self.workspace, self.branch, exclude)

    async def keep_aside(self, slot: int, name: str) -> str:
        return await asyncio.to_thread(self._keep_aside, slot, name)

    def _keep_aside(self, slot: int, name: str) -> str:
        with self.repo.locked():
            return self.repo.keep_aside(slot, name)

    async def release(self, slot: int, remove: bool) -> None:
        await asyncio.to_thread(self.repo.remove_slot if remove else self.repo.release_slot, slot)


def _run_setup(argv: list[str], workspace: str, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        done = subprocess.run(
            argv, cwd=workspace, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        return {"code": 127, "output": f"cannot run {shlex.join(argv)}: {exc.strerror or exc}"}
    return {
        "code": done.returncode,
        "output": done.stdout + "".join(STDERR_MARK + line for line in done.stderr.splitlines(True)),
    }


def preflight(commands: Sequence[str]) -> dict[str, Any]:
    """What this node lacks of `commands` (git first): the runner skips a node that lacks any."""
    import ray

    missing = [name for name in ("git", *commands) if shutil.which(name) is None]
    return {"node_id": ray.get_runtime_context().get_node_id(), "host": platform.node(), "missing": missing}
