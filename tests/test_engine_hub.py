"""The orchestrator is the `Hub` its rooms are written against: nothing checks a Protocol at run time, so
a member the rooms use but the orchestrator lacks would fail only on the path that uses it."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

from tests.test_headless import TWO_TASKS, write_project
from tuiorch.config import load_config
from tuiorch.engine.hub import Hub
from tuiorch.orchestrator import Orchestrator
from tuiorch.tasks import load_tasks


def hub_members() -> tuple[set[str], set[str]]:
    """(attributes, methods and properties) the Hub protocol declares."""
    attributes = set(Hub.__annotations__)
    declared = {name for name, _ in inspect.getmembers(Hub) if name in vars(Hub) and not name.startswith("__")}
    return attributes, declared - attributes - {"_abc_impl", "_is_protocol"}


def test_a_new_orchestrator_has_every_member_of_the_hub(repo: Path) -> None:
    write_project(repo, textwrap.dedent(TWO_TASKS), workers=1)
    orch = Orchestrator(repo, load_config(repo), load_tasks(repo / "TASKS.md"), lambda _event: None)
    attributes, methods = hub_members()
    assert {"_transition", "_emit", "_persist", "base", "records"} <= methods
    assert {"config", "git", "queue", "slots", "_runners", "_agents", "_wake"} <= attributes
    missing = sorted(name for name in attributes | methods if not hasattr(orch, name))
    assert missing == []
    for name in methods - {"base", "records"}:
        ours = inspect.signature(getattr(Hub, name))
        theirs = inspect.signature(getattr(Orchestrator, name))
        assert list(theirs.parameters) == list(ours.parameters), name
