"""Reusable widgets of the main screen."""

from tuiorch.ui.widgets.header import PoolHeader
from tuiorch.ui.widgets.queue_pane import QueuePane
from tuiorch.ui.widgets.queue_table import QueueTable
from tuiorch.ui.widgets.worker_pane import WorkerPane

__all__ = ["PoolHeader", "QueuePane", "QueueTable", "WorkerPane"]
