"""The run-state codec on plain data: a queue saved and restored keeps what the user set."""

from __future__ import annotations

from tuiorch import state
from tuiorch.agent_output import Usage
from tuiorch.model.status import TaskStatus
from tuiorch.queue import RunQueue
from tuiorch.tasks import Priority, Task


def _queue() -> RunQueue:
    return RunQueue(Task(id=i, title=f"task {i}") for i in ("a", "b", "c", "d"))


def test_an_untouched_queued_task_has_no_entry_but_keeps_its_place() -> None:
    queue = _queue()
    queue.toggle_hold("b")
    queue.records["c"].status = TaskStatus.MERGED
    queue.records["c"].commit = "f" * 40
    data = state.dump(queue, base="main", base_at_start="e" * 40, workers=3, finished=False)
    assert data["order"] == ["a", "b", "c", "d"]
    assert set(data["tasks"]) == {"b", "c"}
    assert data["tasks"]["b"]["held"] is True
    assert data["tasks"]["c"]["status"] == "merged"
    assert (data["base"], data["workers"], data["finished"]) == ("main", 3, False)


def test_restore_gives_back_order_holds_priorities_usage_and_merged_facts() -> None:
    saved = _queue()
    saved.to_front("d")
    saved.toggle_hold("a")
    saved.set_priority("b", Priority.POLISH)
    saved.records["b"].usage = Usage(input_tokens=10, output_tokens=5)
    merged = saved.records["c"]
    merged.status, merged.commit, merged.started, merged.ended, merged.attempts = (
        TaskStatus.MERGED, "f" * 40, 100.0, 160.0, 2
    )
    data = state.clean_for_toml(state.dump(saved, base="main", base_at_start=None, workers=2, finished=True))

    fresh = RunQueue(Task(id=i, title=f"task {i}") for i in ("a", "b", "c", "d", "new"))
    back = state.restore(fresh, data)
    assert fresh.order == ["d", "a", "b", "c", "new"]
    assert fresh.records["a"].held
    assert fresh.records["b"].task.priority is Priority.POLISH and fresh.records["b"].priority_override
    assert fresh.records["b"].usage == saved.records["b"].usage
    # The codec writes no status: the orchestrator marks the merged ones it returns.
    assert [rec.task.id for rec in back] == ["c"]
    assert fresh.records["c"].status is TaskStatus.QUEUED
    assert (fresh.records["c"].commit, fresh.records["c"].attempts) == ("f" * 40, 2)


def test_entries_in_order_fill_in_untouched_tasks() -> None:
    data = {"order": ["a", "b"], "tasks": {"b": {"status": "merged"}}}
    assert state.entries_in_order(data) == {"a": {"status": "queued"}, "b": {"status": "merged"}}
