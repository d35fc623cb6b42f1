"""One agent run on a Ray node, seen from tuiorch: output streamed live, results fetched and verified."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuiorch.agent import STDERR_MARK, AgentExit
from tuiorch.confine.attempts import refusals_in
from tuiorch.git import GitError, UncommittedWork
from tuiorch.runners.base import AgentCommand, AgentHooks, Attachment, Collected
from tuiorch.runners.ray import shipping

#: The name of the file beside a task's log that says how many events of its run the log holds.
OFFSET_SUFFIX = ".ray-offset"
#: How long a cancelled wait gives the node to end the agent's tree before going on.
CANCEL_WAIT = 10.0


@dataclass
class RunInfo:
    """What the handle knows of its run; enough to re-attach to it."""

    actor: Any
    name: str
    where: str
    workspace: str
    slot: int
    task_id: str
    branch: str
    #: The base branch's tip when the run was prepared (what "new commits" are counted against).
    base_sha: str
    #: The commit the branch was at when the workspace was prepared: results must descend from it.
    start: str
    log_path: Path
    pgid: int | None = None
    identity: dict[str, str] = field(default_factory=dict)
    scratch: tuple[str, ...] = ()
    #: How the node confines the agent (None: unconfined); {} for a re-attached confined run.
    confine: dict[str, Any] | None = None


class RayHandle:
    """`AgentHandle` for a run in a detached named actor on a node."""

    conflicted: tuple[str, ...] = ()

    def __init__(
        self,
        run: RunInfo,
        root: Path,
        hooks: AgentHooks,
        command: AgentCommand | None,
        *,
        timeout: float | None,
        stuck_after: float | None,
        on_release: Any,
    ) -> None:
        self.run = run
        self.root = root
        self.hooks = hooks
        self.command = command  # None: re-attached, the agent runs already
        self.timeout = timeout
        self.stuck_after = stuck_after
        self.on_release = on_release
        #: Told when the run's node or worker is found gone.
        self.on_lost: Any = lambda: None
        self.workspace = run.workspace
        self.base_sha = run.base_sha
        self.where = run.where
        self.confined = run.confine is not None
        self._cancelled = False
        self._released = False
        #: Where this attempt's output starts in the task's log (None: re-attached, not known).
        self._log_start: int | None = None

    def attachment(self) -> Attachment:
        return Attachment(
            runner="ray",
            where=self.where,
            workspace=self.workspace,
            pgid=self.run.pgid,
            ref=self.run.name,
            confined=self.confined,
        )

    def cancel(self) -> None:
        self._cancelled = True
        with contextlib.suppress(Exception):
            self.run.actor.cancel.remote()

    async def wait(self) -> AgentExit:
        if self.command is not None:
            if self._cancelled:
                return AgentExit(code=None, cancelled=True)
            command, self.command = self.command, None
            self._log_start = self.run.log_path.stat().st_size if self.run.log_path.exists() else 0
            self.run.pgid = await self.run.actor.start.remote(
                list(command.argv),
                dict(command.env),
                command.prompt,
                command.prompt_on_stdin,
                self.timeout,
                self.stuck_after,
                self.run.confine,
            )
            self.hooks.on_started(self.attachment())
            if self._cancelled:  # asked while the agent was being started
                self.run.actor.cancel.remote()
        try:
            exit_ = await self._stream()
        except asyncio.CancelledError:
            self.run.actor.cancel.remote()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._drain(), CANCEL_WAIT)
            raise
        await self._tell_refusals()
        return exit_

    async def _tell_refusals(self) -> None:
        """What the node's sandbox refused this attempt, as its output tells it: one warning."""
        if not self.confined or self._log_start is None:
            return
        if note := await asyncio.to_thread(refusals_in, self.run.log_path, self._log_start):
            self.hooks.on_warning(f"task {self.run.task_id}: {note}")

    async def _drain(self) -> None:
        async for _ in self.run.actor.stream.remote(self._offset()):
            pass

    def _offset_path(self) -> Path:
        # One per run: a retry's run starts counting its events at zero.
        return self.run.log_path.with_name(f"{self.run.log_path.name}.{self.run.name}{OFFSET_SUFFIX}")

    def _offset(self) -> int:
        try:
            return int(self._offset_path().read_text())
        except (OSError, ValueError):
            return 0

    async def _stream(self) -> AgentExit:
        import ray

        offset = self._offset()
        self.run.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            async for ref in self.run.actor.stream.remote(offset):
                burst = await ref
                with open(self.run.log_path, "a", encoding="utf-8") as log:
                    for kind, value in burst:
                        outcome = await self._event(kind, value, log)
                        if outcome is not None:
                            offset += len(burst)
                            self._offset_path().write_text(str(offset))
                            return outcome
                offset += len(burst)
                self._offset_path().write_text(str(offset))
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            self.on_lost()
            message = f"the Ray node {self.where} or its worker was lost: {type(exc).__name__}"
            with open(self.run.log_path, "a", encoding="utf-8") as log:
                log.write(f"tuiorch: {message}\n")
            self.hooks.on_stderr([f"tuiorch: {message}"])
            return AgentExit(code=None, error=message, cancelled=self._cancelled)
        return AgentExit(code=None, error="the node's stream ended without an exit")

    async def _event(self, kind: str, value: Any, log: Any) -> AgentExit | None:
        if kind == "out":
            log.writelines(line + "\n" for line in value)
            self.hooks.on_lines(value)
        elif kind == "err":
            log.writelines(STDERR_MARK + line + "\n" for line in value)
            self.hooks.on_stderr(value)
        elif kind == "stuck":
            self.hooks.on_stuck(float(value))
        elif kind == "unstuck":
            self.hooks.on_unstuck()
        elif kind == "tip":
            # Commits reach the central repository as they appear: predictions see them, and a
            # retry after a lost node builds on them.
            with contextlib.suppress(GitError, shipping.ShippingError):
                await self._fetch(await self.run.actor.bundle_since.remote(self._known()))
        elif kind == "exit":
            return AgentExit(
                code=value["code"],
                signal=value["signal"],
                timed_out=value["timed_out"],
                cancelled=value["cancelled"] or self._cancelled,
                error=value["error"],
            )
        return None

    def _known(self) -> list[str]:
        tip = shipping.branch_tip(self.root, self.run.branch)
        return [sha for sha in {self.run.start, self.run.base_sha, tip} if sha]

    async def _fetch(self, bundle: bytes | None) -> str | None:
        if bundle is None:
            return shipping.branch_tip(self.root, self.run.branch)
        try:
            return await asyncio.to_thread(
                shipping.take_result, self.root, self.run.task_id, self.run.branch, bundle, self.run.start
            )
        except shipping.ShippingError as exc:
            raise GitError(str(exc)) from exc

    async def collect(self, message: str, *, failed: bool) -> Collected:
        result = await self.run.actor.collect.remote(
            message, self.run.identity, self.run.scratch, self._known()
        )
        if result.get("refused") and not failed:
            raise GitError(result["refused"])
        if result["uncommitted"]:
            # Out of the pool: the slot is made anew next time, the work stays where it is named.
            aside = f"{self.run.task_id}-{self.run.name.rsplit('-', 1)[-1]}"
            kept = await self.run.actor.keep_aside.remote(self.run.slot, aside)
            self.workspace = kept
            raise UncommittedWork(
                f"{result['uncommitted']}; kept in {kept} on the Ray node {self.where}", Path(kept)
            )
        try:
            tip = await self._fetch(result["bundle"])
        except GitError:
            if not failed:
                raise
            tip = shipping.branch_tip(self.root, self.run.branch)
        has_new = tip is not None and not shipping.is_ancestor(self.root, tip, self.base_sha)
        return Collected(tip=tip, has_new_commits=has_new, markers=tuple(result.get("markers") or ()))

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._offset_path().unlink(missing_ok=True)
        await self.on_release(self)
