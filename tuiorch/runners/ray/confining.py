"""`[agent] confine` for agents on Ray nodes: decided per node, on the node, as each agent is placed.

Bubblewrap is probed where the agent runs (this machine having it says nothing of a node). `on` and a node
where it cannot confine: that start fails, naming the node; `auto`: the agent runs unconfined there, and
the run is warned once per such node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuiorch.runners.base import AgentHooks, StartFailed


@dataclass
class NodeConfinement:
    """How agents on the nodes are confined: the mode, the preset (its CLI's state folders) and the user's
    extra writable paths (expanded on the node)."""

    mode: str = "off"
    preset: str = "custom"
    writable: Sequence[str] = ()
    #: Nodes the run was already warned about.
    _warned: set[str] = field(default_factory=set)

    async def for_node(self, actor: Any, where: str, hooks: AgentHooks) -> dict[str, Any] | None:
        """What the actor confines its agent with (None: unconfined), asking the node whether it can."""
        if self.mode == "off":
            return None
        problem = await actor.sandbox_problem.remote()
        if problem is None:
            return {"preset": self.preset, "writable": list(self.writable)}
        if self.mode == "on":
            raise StartFailed(f'[agent] confine = "on", but on the Ray node {where}: {problem}')
        if where not in self._warned:
            self._warned.add(where)
            hooks.on_notice(
                f"agents on the Ray node {where} are not confined ({problem}): each can write anywhere "
                'the node\'s user can; install bubblewrap there, or set [agent] confine = "off"'
            )
        return None
