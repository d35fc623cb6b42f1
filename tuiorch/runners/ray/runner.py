"""`RayRunner`: agents in detached named actors on a Ray cluster, placed by tuiorch on nodes that passed
preflight; the central repository, the merge and the run state stay in tuiorch's process.

Placement is tuiorch's own: each node takes as many agents as its `resources` allow (a node started with
``--resources='{"tuiorch_agent": 4}'`` takes four agents asking for one), nodes that lack git or the agent
CLI are reported and skipped, and a lost node is left out of later placements (its tasks are retried
elsewhere on top of the commits already fetched from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuiorch.runners.base import AgentHooks, AgentSpec, Attachment, StartFailed, Workspace, render_command
from tuiorch.runners.ray import shipping
from tuiorch.runners.ray.actor import AgentActor
from tuiorch.runners.ray.cluster import cluster_messages_to_stderr, identity, reachable
from tuiorch.runners.ray.confining import NodeConfinement
from tuiorch.runners.ray.handle import RayHandle, RunInfo
from tuiorch.runners.ray.nodegit import node_sweep, repo_key
from tuiorch.runners.ray.placement import NoNode, Placement

#: The Ray namespace every tuiorch actor lives in (a new tuiorch finds its runs there by name).
NAMESPACE = "tuiorch"
DEFAULT_RESOURCES: Mapping[str, float] = {"tuiorch_agent": 1.0}
#: The commit message of what an orphaned run left uncommitted.
ORPHAN_MESSAGE = "wip: work left uncommitted by an interrupted run"


def _report_setup(spec: AgentSpec, where: str, setup: dict[str, Any] | None) -> None:
    """[slots] setup's output into the task's log; its failure is a StartFailed."""
    if setup is None:
        return
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "a", encoding="utf-8") as log:
        log.write(f"== setup on {where}: {' '.join(spec.setup or ())} ==\n{setup['output']}")
    if setup["code"] != 0:
        raise StartFailed(f"[slots] setup failed on {where} (exit {setup['code']})")


class RayRunner:
    kind = "ray"

    def __init__(
        self,
        root: Path,
        *,
        address: str,
        resources: Mapping[str, float] | None = None,
        commands: Sequence[str] = (),
        keep: Sequence[str] = (),
        reuse: bool = True,
        keep_at_end: bool = False,
        scratch: Sequence[str] = (),
        confinement: NodeConfinement | None = None,
    ) -> None:
        self.root = Path(root)
        self.key = repo_key(shipping.common_git_dir(self.root))
        self.address = address
        self.resources = dict(resources or DEFAULT_RESOURCES)
        self.keep = tuple(keep)
        self.reuse = reuse
        self.keep_at_end = keep_at_end
        self.scratch = tuple(scratch)
        self.confinement = confinement or NodeConfinement()
        self.identity = identity(self.root)
        self.placement = Placement(resources or DEFAULT_RESOURCES, commands)
        self.handles: set[RayHandle] = set()
        #: Slot worktrees in use on each node (node id -> slot numbers), re-attached runs' too.
        self.busy: dict[str, set[int]] = {}
        self._lock = asyncio.Lock()
        self._connecting = asyncio.Lock()

    # -- the cluster ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Join the cluster as its driver, once; an unreachable cluster is a StartFailed saying so."""
        try:
            import ray
        except ImportError:
            raise StartFailed("[runner] kind = \"ray\" needs Ray: pip install 'tuiorch[ray]'") from None

        async with self._connecting:
            if ray.is_initialized():
                cluster_messages_to_stderr()
                return
            init = functools.partial(
                ray.init,
                address=self.address,
                namespace=NAMESPACE,
                logging_level="ERROR",
                log_to_driver=False,
            )
            try:
                # Ray itself retries an unreachable address for minutes: look first.
                await asyncio.to_thread(reachable, self.address)
                await asyncio.to_thread(init)
                cluster_messages_to_stderr()
            except (OSError, RuntimeError, ValueError) as exc:
                raise StartFailed(f"cannot reach the Ray cluster at {self.address}: {exc}") from None

    async def _place(self, hooks: AgentHooks) -> str:
        async with self._lock:
            await self.connect()
            for notice in await self.placement.refresh():
                hooks.on_notice(notice)
            try:
                return self.placement.take()
            except NoNode as exc:
                raise StartFailed(str(exc)) from None

    def _actor_name(self, spec: AgentSpec) -> str:
        return f"tuiorch-{self.key}-{spec.task_id}-{spec.kind}-{spec.attempt}"

    def _take_slot(self, node_id: str, wanted: int) -> int:
        """The node's slot worktree for a run: the pool's slot number, unless a run re-attached after a
        restart still works in that one there."""
        busy = self.busy.setdefault(node_id, set())
        slot = next(n for n in itertools.chain([wanted], itertools.count()) if n not in busy)
        busy.add(slot)
        return slot

    # -- the seam ---------------------------------------------------------------------------------------

    async def start(self, spec: AgentSpec, hooks: AgentHooks) -> RayHandle:
        import ray

        for _ in range(3):  # a node that dies while the run is being prepared: another one
            node_id = await self._place(hooks)
            try:
                return await self._start_on(node_id, spec, hooks)
            except ray.exceptions.ActorDiedError:
                self.placement.give_back(node_id)
                self.placement.lost(node_id)
            except BaseException:
                self.placement.give_back(node_id)
                raise
        raise StartFailed("the Ray nodes chosen for this agent died while it was being prepared")

    async def _start_on(self, node_id: str, spec: AgentSpec, hooks: AgentHooks) -> RayHandle:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = self._actor_name(spec)
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE))  # a leftover of a run that died
        actor = (
            ray.remote(AgentActor)
            .options(
                name=name,
                namespace=NAMESPACE,
                lifetime="detached",
                num_cpus=0,
                resources=self.resources,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
                max_restarts=0,
            )
            .remote(self.key)
        )
        slot = self._take_slot(node_id, spec.slot)
        try:
            return await self._prepare(actor, name, node_id, slot, spec, hooks)
        except ray.exceptions.RayTaskError as exc:
            self.busy[node_id].discard(slot)
            ray.kill(actor)
            where = self.placement.where(node_id)
            raise StartFailed(
                f"preparing the workspace on the Ray node {where} failed: {exc.cause}"
            ) from None
        except BaseException:
            self.busy[node_id].discard(slot)
            ray.kill(actor)
            raise

    async def _prepare(
        self, actor: Any, name: str, node_id: str, slot: int, spec: AgentSpec, hooks: AgentHooks
    ) -> RayHandle:
        base_sha = shipping.branch_tip(self.root, spec.base)
        if base_sha is None:
            raise StartFailed(f"the base branch {spec.base} does not exist")
        kept = shipping.branch_tip(self.root, spec.branch) if spec.keep_commits else None
        start = kept or base_sha
        node = await actor.node.remote()
        also = [base_sha] if spec.kind == "resolve" else []
        bundle, ref = await asyncio.to_thread(
            shipping.ship_bundle, self.root, spec.task_id, start, node["tips"], also
        )
        setup = list(spec.setup) if spec.setup else None
        prepared = await actor.prepare.remote(
            bundle, ref, start, slot, spec.branch, list(self.keep), setup, dict(spec.env)
        )
        where = self.placement.where(node_id)
        _report_setup(spec, where, prepared["setup"])
        confine = await self.confinement.for_node(actor, where, hooks)
        run = RunInfo(
            actor=actor,
            name=name,
            where=where,
            workspace=prepared["workspace"],
            slot=slot,
            task_id=spec.task_id,
            branch=spec.branch,
            base_sha=base_sha,
            start=start,
            log_path=spec.log_path,
            identity=self.identity,
            scratch=self.scratch,
            confine=confine,
        )
        conflicted: list[str] = []
        if spec.kind == "resolve":
            conflicted = await actor.merge_in.remote(base_sha, spec.merge_message, self.identity)
        workspace = Workspace(
            path=prepared["workspace"], prompt_file=prepared["prompt_file"], conflicted=tuple(conflicted)
        )
        try:
            command = await render_command(spec, workspace)
        except StartFailed:
            await actor.release.remote(slot, not self.reuse)
            raise
        handle = self._handle(run, hooks, command, spec, node_id)
        handle.conflicted = tuple(conflicted)
        return handle

    def _handle(
        self, run: RunInfo, hooks: AgentHooks, command: Any, spec: AgentSpec, node_id: str
    ) -> RayHandle:
        release = functools.partial(self._release, node_id=node_id)
        handle = RayHandle(
            run,
            self.root,
            hooks,
            command,
            timeout=spec.timeout,
            stuck_after=spec.stuck_after,
            on_release=release,
        )
        self.handles.add(handle)
        return handle

    async def _release(self, handle: RayHandle, *, node_id: str) -> None:
        import ray

        self.handles.discard(handle)
        self.placement.give_back(node_id)
        self.busy.get(node_id, set()).discard(handle.run.slot)
        with contextlib.suppress(ray.exceptions.RayError):
            await handle.run.actor.release.remote(handle.run.slot, not self.reuse)
        with contextlib.suppress(ray.exceptions.RayError, ValueError):
            ray.kill(handle.run.actor)

    async def reattach(self, saved: Attachment, spec: AgentSpec, hooks: AgentHooks) -> RayHandle | None:
        found = await self._find_run(saved)
        if found is None:
            return None
        actor, status = found
        node = await actor.node.remote()
        node_id = node["node_id"]
        await self.placement.refresh()
        self.placement.count(node_id)
        # The node slot it works in stays its own until released (a new run takes another).
        name = Path(status["workspace"]).name
        slot = int(name) if name.isdigit() else spec.slot
        self.busy.setdefault(node_id, set()).add(slot)
        base_sha = shipping.branch_tip(self.root, spec.base) or status["start"]
        run = RunInfo(
            actor=actor,
            name=saved.ref,
            where=saved.where,
            workspace=status["workspace"],
            slot=slot,
            task_id=spec.task_id,
            branch=status["branch"],
            base_sha=base_sha,
            start=status["start"],
            log_path=spec.log_path,
            pgid=status["pgid"],
            identity=self.identity,
            scratch=self.scratch,
            confine={} if status.get("confined") else None,
        )
        return self._handle(run, hooks, None, spec, node_id)

    async def _find_run(self, saved: Attachment) -> tuple[Any, dict[str, Any]] | None:
        """The saved run's actor and its status, if it is still on the cluster and its agent was started."""
        import ray

        if saved.runner != self.kind or not saved.ref:
            return None
        try:
            await self.connect()
            actor = ray.get_actor(saved.ref, namespace=NAMESPACE)
            status = await actor.status.remote()
        except (ValueError, StartFailed, ray.exceptions.RayError):
            return None
        return (actor, status) if status["workspace"] and status["pgid"] is not None else None

    async def running(self, saved: Attachment) -> bool:
        return await self._find_run(saved) is not None

    async def clean_up(self, saved: Attachment, *, leftovers_message: str | None = None) -> str | None:
        import ray

        if saved.runner != self.kind or not saved.ref:
            return None
        await self.connect()
        try:
            actor = ray.get_actor(saved.ref, namespace=NAMESPACE)
        except ValueError:
            return None
        await self._bring_back(actor, saved.ref, leftovers_message)
        return f"ended the agent {saved.ref} on the Ray node {saved.where}"

    async def _bring_back(self, actor: Any, name: str, message: str | None) -> None:
        """End a run's agent, bring its commits (and, with `message`, its leftovers committed) into the
        task branch, and end the actor; the node's workspace is released only when nothing is left in it."""
        import ray

        with contextlib.suppress(ray.exceptions.RayError, shipping.ShippingError):
            await actor.end.remote()
            status = await actor.status.remote()
            if status["workspace"]:
                known = [
                    sha for sha in (status["start"], shipping.branch_tip(self.root, status["branch"])) if sha
                ]
                if message:
                    result = await actor.collect.remote(message, self.identity, self.scratch, known)
                    bundle = None if result["uncommitted"] else result["bundle"]
                else:
                    bundle = await actor.bundle_since.remote(known)
                if bundle:
                    task_id = name.removeprefix(f"tuiorch-{self.key}-").rsplit("-", 2)[0]
                    await asyncio.to_thread(
                        shipping.take_result, self.root, task_id, status["branch"], bundle, status["start"]
                    )
        with contextlib.suppress(ray.exceptions.RayError, ValueError):
            ray.kill(actor)

    async def end_orphans(self, spare: Collection[str] = ()) -> list[str]:
        """Every run of this repository still on the cluster but those named in `spare` is ended; its
        commits and leftovers are brought into its task branch first (a run whose state was never saved
        loses nothing either)."""
        import ray

        await self.connect()
        ended = []
        prefix = f"tuiorch-{self.key}-"
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") != NAMESPACE or not entry["name"].startswith(prefix):
                continue
            if entry["name"] in spare:
                continue
            with contextlib.suppress(ValueError):
                actor = ray.get_actor(entry["name"], namespace=NAMESPACE)
                await self._bring_back(actor, entry["name"], ORPHAN_MESSAGE)
                ended.append(f"ended the orphaned agent {entry['name']} on the Ray cluster")
        return ended

    async def sweep_all(self) -> list[str]:
        """Remove this repository's slot worktrees on every alive node."""
        import ray

        swept = []
        for node in ray.nodes():
            if not node.get("Alive") or self.placement.capacity(node.get("Resources", {})) <= 0:
                continue
            with contextlib.suppress(ray.exceptions.RayError):
                if await _sweep(node["NodeID"], self.key, remove_slots=True):
                    swept.append(f"removed the slot worktrees on the Ray node {node['NodeID'][:6]}")
        return swept

    async def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for handle in list(self.handles):
            handle.cancel()
            await handle.release()
        used = [node_id for node_id in self.placement.used if node_id in self.placement.nodes]
        sweeps = [_sweep(node_id, self.key, remove_slots=not self.keep_at_end) for node_id in used]
        for each in sweeps:
            with contextlib.suppress(ray.exceptions.RayError):
                await each


def _sweep(node_id: str, key: str, *, remove_slots: bool) -> Any:
    """`node_sweep` on the node `node_id`, started (an object ref to await)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return ray.remote(node_sweep).options(num_cpus=0, scheduling_strategy=strategy).remote(key, remove_slots)


def clean_cluster(root: Path, config: Any) -> list[str]:
    """`tuiorch clean` on a Ray cluster: end every run of this repository still there (its commits and
    leftovers brought into its task branch first) and remove the repository's slot worktrees on every
    node; one line per thing done."""

    async def clean() -> list[str]:
        runner = make_ray_runner(root, config, (), ())
        await runner.connect()
        lines = await runner.end_orphans()
        lines += await runner.sweep_all()
        return lines

    try:
        return asyncio.run(clean())
    finally:
        import ray

        ray.shutdown()


def make_ray_runner(root: Path, config: Any, commands: Sequence[str], scratch: Sequence[str]) -> RayRunner:
    """The runner for a `Config` whose [runner] kind is "ray"."""
    return RayRunner(
        root,
        address=config.runner.address,
        resources=config.runner.resources,
        commands=commands,
        keep=config.slots.keep,
        reuse=config.slots.reuse,
        keep_at_end=config.slots.keep_at_end,
        scratch=scratch,
        confinement=NodeConfinement(config.agent.confine, config.agent.preset, config.agent.writable),
    )


__all__ = ["NAMESPACE", "RayRunner", "make_ray_runner"]
