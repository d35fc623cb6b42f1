"""Which agents a Ray node confines, from what its own bubblewrap probe says (a fake actor answers it;
the real node is tests/ray/test_confine_ray.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tuiorch.runners.base import AgentHooks, StartFailed
from tuiorch.runners.ray.confining import NodeConfinement


class _Probe:
    def __init__(self, problem: str | None) -> None:
        self.problem = problem

    async def remote(self) -> str | None:
        return self.problem


class _Actor:
    """Answers `sandbox_problem.remote()` as a node would."""

    def __init__(self, problem: str | None) -> None:
        self.sandbox_problem = _Probe(problem)


def _ask(confinement: NodeConfinement, problem: str | None, where: str, notices: list[str]) -> Any:
    hooks = AgentHooks(on_notice=notices.append)
    return asyncio.run(confinement.for_node(_Actor(problem), where, hooks))


def test_a_node_with_bubblewrap_confines_its_agents() -> None:
    notices: list[str] = []
    confine = _ask(NodeConfinement("auto", "claude", ["~/.npm"]), None, "n1", notices)
    assert confine == {"preset": "claude", "writable": ["~/.npm"]} and notices == []


def test_auto_runs_unconfined_on_a_node_without_bubblewrap_warning_once_per_node() -> None:
    confinement, notices = NodeConfinement("auto", "claude"), []
    for where in ("n1", "n1", "n2"):
        assert _ask(confinement, "bubblewrap (bwrap) is not installed", where, notices) is None
    assert len(notices) == 2 and "n1" in notices[0] and "n2" in notices[1]
    assert "not confined" in notices[0] and "bubblewrap (bwrap) is not installed" in notices[0]


def test_on_fails_the_start_on_a_node_without_bubblewrap_naming_it() -> None:
    with pytest.raises(StartFailed, match="on the Ray node n1: bubblewrap"):
        _ask(NodeConfinement("on", "claude"), "bubblewrap (bwrap) is not installed", "n1", [])


def test_off_never_asks_the_node() -> None:
    assert _ask(NodeConfinement("off", "claude"), "never asked", "n1", []) is None
