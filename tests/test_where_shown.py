"""Where an agent runs shows in its pane and in `tuiorch status` when it is not this machine."""

from __future__ import annotations

from types import SimpleNamespace

from tuiorch.cli.saved import _sandbox_word
from tuiorch.events import TaskStatus
from tuiorch.ui.widgets.worker_pane import status_line


def record(where: str, status: TaskStatus = TaskStatus.RUNNING) -> SimpleNamespace:
    return SimpleNamespace(
        status=status, attempts=1, confined=False, where=where, activity="", progress=None, usage=None
    )


def test_the_pane_names_the_node_of_a_remote_agent_at_work() -> None:
    assert "on gpu-box/1a2b3c" in status_line(record("gpu-box/1a2b3c"), TaskStatus.RUNNING, 3.0, 1.0)
    assert " on " not in status_line(record("local"), TaskStatus.RUNNING, 3.0, 1.0)
    assert "on gpu-box" not in status_line(record("gpu-box/1a2b3c"), TaskStatus.MERGED, 3.0, None)


def test_status_names_the_node_of_a_remote_agent_at_work() -> None:
    assert _sandbox_word({"status": "running", "where": "gpu-box/1a2b3c"}) == "on gpu-box/1a2b3c unconfined "
    assert _sandbox_word({"status": "running", "where": "local", "confined": True}) == "confined "
    assert _sandbox_word({"status": "merged", "where": "gpu-box/1a2b3c"}) == ""
