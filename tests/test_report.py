"""The run's summary on plain data: the same rows and totals from a live queue and from its saved state."""

from __future__ import annotations

from tuiorch import report, state
from tuiorch.agent_output import Usage
from tuiorch.model.status import TaskStatus
from tuiorch.queue import RunQueue
from tuiorch.tasks import Task

COMMITS = [("abc1234", "feat: Add alpha")]


def _run() -> RunQueue:
    queue = RunQueue(Task(id=i, title=f"task {i}") for i in ("a", "b", "c"))
    a = queue.records["a"]
    a.status, a.commit, a.started, a.ended, a.attempts = TaskStatus.MERGED, "f" * 40, 100.0, 112.34, 1
    a.usage = Usage(input_tokens=100, output_tokens=20, cost_usd=0.5)
    b = queue.records["b"]
    b.status, b.reason, b.started, b.ended, b.attempts = TaskStatus.FAILED, "agent exited 1", 100.0, 101.0, 2
    b.usage = Usage(input_tokens=1, output_tokens=2)
    return queue


def test_a_live_run_counts_merged_and_not_and_totals_usage() -> None:
    summary = report.from_records(_run().in_order(), COMMITS)
    assert [row["id"] for row in summary.tasks] == ["a", "b", "c"]
    assert summary.tasks[0] == {
        "id": "a",
        "title": "task a",
        "status": "merged",
        "duration": 12.3,
        "commit": "f" * 40,
        "attempts": 1,
        "reason": "",
        "usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.5},
    }
    assert (summary.merged, summary.failed, summary.exit_code) == (1, 2, 1)
    assert summary.usage == {"input_tokens": 101, "output_tokens": 22, "cost_usd": 0.5}
    assert summary.commits == [{"commit": "abc1234", "subject": "feat: Add alpha"}]


def test_a_saved_run_gives_the_same_rows_less_what_it_does_not_keep() -> None:
    queue = _run()
    live = report.from_records(queue.in_order(), COMMITS)
    data = state.clean_for_toml(state.dump(queue, base="main", base_at_start=None, workers=2, finished=True))
    saved = report.from_saved(state.entries_in_order(data), COMMITS)
    # The saved rows leave out the attempts and empty values; the rest is the live run's.
    expected = [
        {key: value for key, value in row.items() if key != "attempts" and value != ""} for row in live.tasks
    ]
    expected[2]["title"] = ""  # an untouched queued task has no entry, so no title, in the saved state
    assert saved.tasks == expected
    assert (saved.merged, saved.failed, saved.exit_code, saved.usage) == (1, 2, 1, live.usage)


def test_all_merged_exits_zero_and_no_usage_is_none() -> None:
    queue = RunQueue([Task(id="a", title="a")])
    queue.records["a"].status = TaskStatus.MERGED
    summary = report.from_records(queue.in_order(), [])
    assert (summary.exit_code, summary.usage) == (0, None)
