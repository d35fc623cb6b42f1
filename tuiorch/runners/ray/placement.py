"""Which node of the cluster takes the next agent.

tuiorch places agents itself rather than leaving it to Ray, so that a node is preflighted (git, the agent
CLI) before it gets one, a node lacking them is reported and skipped, and a node a run found gone takes no
more agents while Ray may still list it as alive.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Seconds a node a run found gone takes no agents, even while Ray still lists it as alive (Ray marks a
#: node dead after missing heartbeats for about half a minute); one still alive after is taken back.
LOST_GRACE = 60.0


class NoNode(Exception):
    """No node of the cluster can take an agent now; the message says why."""


@dataclass
class Node:
    where: str  # "host/abcdef": what the task pane and `tuiorch status` show
    capacity: int  # agents it takes
    running: int = 0


class Placement:
    """The nodes that take agents, how many each runs, and the ones left out (and why)."""

    def __init__(self, resources: Mapping[str, float], commands: Sequence[str]) -> None:
        self.resources = dict(resources)
        self.commands = tuple(commands)
        self.nodes: dict[str, Node] = {}
        self.skipped: dict[str, str] = {}  # node id -> why it takes no agents
        self.lost_at: dict[str, float] = {}  # node id -> when a run found it gone
        self.used: set[str] = set()

    async def refresh(self) -> list[str]:
        """Learn the alive nodes that can take agents, preflighting new ones; notices for the user."""
        import ray

        notices: list[str] = []
        alive = {node["NodeID"]: node for node in ray.nodes() if node.get("Alive")}
        for node_id in [n for n in self.nodes if n not in alive]:
            notices.append(f"Ray node {self.nodes.pop(node_id).where} is gone; no more agents go there")
        for node_id, node in alive.items():
            capacity = self.capacity(node.get("Resources", {}))
            if (
                self._is_new(node_id)
                and capacity > 0
                and (notice := await self._preflight(node_id, capacity))
            ):
                notices.append(notice)
        return notices

    def _is_new(self, node_id: str) -> bool:
        return not (node_id in self.nodes or node_id in self.skipped or self._recently_lost(node_id))

    def capacity(self, resources: Mapping[str, float]) -> int:
        return min(int(resources.get(name, 0) // amount) for name, amount in self.resources.items())

    def _recently_lost(self, node_id: str) -> bool:
        return time.monotonic() - self.lost_at.get(node_id, -LOST_GRACE) < LOST_GRACE

    async def _preflight(self, node_id: str, capacity: int) -> str | None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from tuiorch.runners.ray.actor import preflight

        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        check = ray.remote(preflight).options(num_cpus=0, scheduling_strategy=strategy)
        report = await check.remote(list(self.commands))
        where = f"{report['host']}/{node_id[:6]}"
        if report["missing"]:
            self.skipped[node_id] = f"lacks {', '.join(report['missing'])}"
            return f"Ray node {where} lacks {', '.join(report['missing'])}: no agents go there"
        self.nodes[node_id] = Node(where=where, capacity=capacity)
        return None

    def take(self) -> str:
        """A node for one more agent: the least loaded, among equals the one that takes the most."""
        free = [
            (node.running / node.capacity, -node.capacity, node_id)
            for node_id, node in self.nodes.items()
            if node.running < node.capacity
        ]
        if not free:
            why = "; ".join(f"{node_id[:6]} {reason}" for node_id, reason in self.skipped.items())
            raise NoNode(f"no Ray node can take an agent now{': ' + why if why else ''}")
        node_id = min(free)[2]
        self.nodes[node_id].running += 1
        self.used.add(node_id)
        return node_id

    def give_back(self, node_id: str) -> None:
        if node_id in self.nodes:
            self.nodes[node_id].running = max(0, self.nodes[node_id].running - 1)

    def count(self, node_id: str) -> None:
        """A re-attached run holds a place on its node."""
        if node_id in self.nodes:
            self.nodes[node_id].running += 1
            self.used.add(node_id)

    def lost(self, node_id: str) -> None:
        """A run found its node or worker gone: no agent goes there for a while."""
        self.nodes.pop(node_id, None)
        self.lost_at[node_id] = time.monotonic()

    def where(self, node_id: str) -> str:
        return self.nodes[node_id].where if node_id in self.nodes else node_id[:6]
