"""What the main screen offers: which action applies to the selection, and the words when it does not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.test_headless import TWO_TASKS, write_project
from tuiorch.config import load_config
from tuiorch.orchestrator import Orchestrator
from tuiorch.tasks import load_tasks
from tuiorch.ui.availability import ENGINE_COMMANDS, Selection, why_not


@pytest.fixture
def orch(repo: Path) -> Orchestrator:
    """A real orchestrator on a real repository, not started: every task is queued."""
    write_project(repo, textwrap.dedent(TWO_TASKS), workers=1)
    return Orchestrator(repo, load_config(repo), load_tasks(repo / "TASKS.md"), lambda _event: None)


def selected(orch: Orchestrator, task_id: str | None, conflict: str | None = None) -> Selection:
    return Selection(task_id, orch.records.get(task_id) if task_id else None, lambda: conflict)


def test_nothing_selected_says_so_for_every_task_action(orch: Orchestrator) -> None:
    for action in ("log", "diff", "open", *ENGINE_COMMANDS):
        assert why_not(action, orch, selected(orch, None)) == "no task selected", action


def test_a_queued_task_can_be_moved_held_and_reprioritised_but_has_nothing_to_show(orch: Orchestrator) -> None:
    one = selected(orch, "1")
    for action in ("move_up", "move_down", "move_top", "toggle_hold", "priority", "open"):
        assert why_not(action, orch, one) is None, action
    assert why_not("cancel", orch, one) == "task 1 is queued; only a running task can be cancelled"
    assert why_not("retry", orch, one) == "task 1 is queued; only a failed, cancelled, empty or check-failed task is retried"
    assert why_not("send_back", orch, one) == "task 1 is queued; only a conflict or a failed check goes back to an agent"
    assert why_not("log", orch, one) == "task 1 has no log yet: it has not started"
    assert why_not("diff", orch, one) == "task 1 has not started: nothing to review yet"


def test_merging_by_hand_is_refused_while_merges_are_automatic(orch: Orchestrator) -> None:
    assert orch.config.merge.auto
    assert why_not("merge_now", orch, selected(orch, "1")) == (
        "task 1 is queued; only a finished task waiting for your word is merged by hand"
    )


def test_the_pool_and_the_conflict_key_depend_on_the_run_not_the_selection(orch: Orchestrator) -> None:
    assert why_not("shrink_pool", orch, selected(orch, "1")) == "the pool is down to one worker"
    assert why_not("grow_pool", orch, selected(orch, None)) is None
    assert why_not("conflicts", orch, selected(orch, None)) == "no task is in conflict"
    assert why_not("conflicts", orch, selected(orch, None, conflict="2")) is None
