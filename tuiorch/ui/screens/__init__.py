"""Screens: confirm, conflict triage, diff review, full log, summary, add a task, help."""

from tuiorch.ui.screens.add_task import AddTaskScreen
from tuiorch.ui.screens.confirm import ConfirmScreen
from tuiorch.ui.screens.conflict import ConflictScreen
from tuiorch.ui.screens.diff import DiffScreen, NoteScreen
from tuiorch.ui.screens.help import HelpScreen
from tuiorch.ui.screens.log import LogScreen
from tuiorch.ui.screens.summary import SummaryScreen

__all__ = [
    "AddTaskScreen",
    "ConfirmScreen",
    "ConflictScreen",
    "DiffScreen",
    "HelpScreen",
    "LogScreen",
    "NoteScreen",
    "SummaryScreen",
]
