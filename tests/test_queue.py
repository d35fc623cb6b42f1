"""RunQueue on plain data: the user's order, holds and priorities, without a repository or a loop."""

from __future__ import annotations

import pytest

from tuiorch.model.status import TaskStatus
from tuiorch.queue import QueueError, QueueRow, RunQueue
from tuiorch.tasks import Priority, Task


def _queue(*ids: str) -> RunQueue:
    return RunQueue(Task(id=i, title=f"task {i}") for i in ids)


def test_tasks_keep_the_file_order() -> None:
    queue = _queue("a", "b", "c")
    assert queue.order == ["a", "b", "c"]
    assert [t.id for t in queue.queued()] == ["a", "b", "c"]
    assert "b" in queue and "z" not in queue and len(queue) == 3


def test_move_counts_only_queued_tasks() -> None:
    queue = _queue("a", "b", "c", "d")
    queue.records["b"].status = TaskStatus.RUNNING
    # Down by one from "a" skips the running "b" and lands after "c".
    assert queue.move("a", 1) is True
    assert queue.order == ["b", "c", "a", "d"]
    # Up by two finds only one queued task above ("c"): as far as the queue goes, the running "b" keeps its place.
    assert queue.move("a", -2) is True
    assert queue.order == ["b", "a", "c", "d"]


def test_move_past_either_end_stays_and_says_so() -> None:
    queue = _queue("a", "b")
    assert queue.move("a", -1) is False
    assert queue.move("b", 5) is False
    assert queue.order == ["a", "b"]
    assert queue.move("b", -5) is True
    assert queue.order == ["b", "a"]


def test_move_top_raises_the_task_to_the_best_queued_tier() -> None:
    queue = RunQueue(
        [
            Task(id="a", title="a", priority=Priority.FOUNDATION),
            Task(id="b", title="b", priority=Priority.POLISH),
        ]
    )
    assert queue.move_top("b") is Priority.FOUNDATION
    assert queue.order == ["b", "a"]
    assert queue.records["b"].priority_override is True
    assert [t.id for t in queue.queued()] == ["b", "a"]


def test_move_top_keeps_a_priority_already_best() -> None:
    queue = _queue("a", "b")
    assert queue.move_top("b") is Priority.FEATURE
    assert queue.records["b"].priority_override is False


def test_a_started_task_does_not_count_for_the_best_tier() -> None:
    queue = RunQueue(
        [
            Task(id="a", title="a", priority=Priority.FOUNDATION),
            Task(id="b", title="b", priority=Priority.POLISH),
        ]
    )
    queue.records["a"].status = TaskStatus.MERGED
    assert queue.move_top("b") is Priority.POLISH


def test_hold_toggles() -> None:
    queue = _queue("a")
    assert queue.toggle_hold("a") is True
    assert queue.records["a"].held
    assert queue.toggle_hold("a") is False


def test_add_refuses_a_taken_id_and_unknown_dependencies() -> None:
    queue = _queue("a")
    with pytest.raises(QueueError, match="a task a exists already"):
        queue.add(Task(id="a", title="again"))
    with pytest.raises(QueueError, match="depends on unknown task x, y"):
        queue.add(Task(id="b", title="b", depends=("a", "x", "y")))
    assert queue.order == ["a"]
    queue.add(Task(id="b", title="b", depends=("a",)))
    assert queue.order == ["a", "b"]


def test_reload_edits_queued_tasks_adds_new_ones_and_drops_removed_queued_ones() -> None:
    queue = _queue("a", "b", "c")
    queue.records["b"].status = TaskStatus.RUNNING
    queue.set_priority("a", Priority.POLISH)
    queue.reload([Task(id="a", title="edited", priority=Priority.FOUNDATION), Task(id="d", title="new")])
    # "b" runs, so it stays although the file lost it; "c" was waiting and leaves.
    assert queue.order == ["a", "b", "d"]
    assert queue.records["a"].task.title == "edited"
    # The keyboard's priority wins over the file's.
    assert queue.records["a"].task.priority is Priority.POLISH
    assert "c" not in queue


def test_to_front_and_restore_order() -> None:
    queue = _queue("a", "b", "c", "new")
    queue.to_front("c")
    assert queue.order == ["c", "a", "b", "new"]
    queue.restore_order(["b", "gone", "a", "c"])
    assert queue.order == ["b", "a", "c", "new"]


def test_view_is_cached_until_the_version_moves() -> None:
    queue = _queue("a")
    first = queue.view(free_slots=1, paused=False)
    assert first == [QueueRow(task=queue.records["a"].task, status=TaskStatus.QUEUED, held=False, reason=None)]
    queue.toggle_hold("a")
    assert queue.view(free_slots=1, paused=False) is first  # the owner has not said that anything changed
    queue.version += 1
    assert queue.view(free_slots=1, paused=False)[0].held


def test_rows_say_why_a_task_waits() -> None:
    queue = RunQueue(
        [
            Task(id="a", title="a", touches=("src/x.py",)),
            Task(id="b", title="b", touches=("src/x.py",)),
            Task(id="c", title="c", depends=("a",)),
            Task(id="d", title="d"),
        ]
    )
    queue.records["a"].status = TaskStatus.RUNNING
    reasons = {row.task.id: row.reason for row in queue.view(free_slots=1, paused=False)}
    assert reasons["d"] is None
    assert "a" in (reasons["b"] or "") and "a" in (reasons["c"] or "")
    queue.version += 1
    paused = {row.task.id: row.reason for row in queue.view(free_slots=1, paused=True)}
    assert paused["d"] == "paused" and paused["b"] == reasons["b"]


def test_pick_starts_what_fits_and_skips_held_and_busy_tasks() -> None:
    queue = RunQueue(
        [
            Task(id="a", title="a", touches=("src/x.py",)),
            Task(id="b", title="b", touches=("src/x.py",)),
            Task(id="c", title="c"),
            Task(id="d", title="d"),
        ]
    )
    queue.records["a"].status = TaskStatus.RUNNING
    queue.toggle_hold("c")
    assert [t.id for t in queue.pick(3)] == ["d"]
    queue.records["a"].status = TaskStatus.MERGED
    assert [t.id for t in queue.pick(1)] == ["b"]


def test_counts_by_status() -> None:
    queue = _queue("a", "b", "c")
    queue.records["a"].status = TaskStatus.RUNNING
    queue.records["b"].status = TaskStatus.MERGED
    assert queue.count_in({TaskStatus.RUNNING, TaskStatus.STUCK}) == 1
    assert queue.has_active_work()
    queue.records["a"].status = TaskStatus.FAILED
    assert not queue.has_active_work()
