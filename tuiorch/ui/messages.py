"""Typed Textual messages the bridge posts to the app ("messages up"). Only bridge.py creates them."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass
class OutputReady(Message):
    """New log lines for `task` wait in the bridge; a newer one for the same task replaces a queued one."""

    task: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputReady) and message.task == self.task


@dataclass
class ProgressChanged(Message):
    task: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProgressChanged) and message.task == self.task


@dataclass
class TaskChanged(Message):
    """A task moved to another state (the event's name says which transition)."""

    task: str
    event: str


@dataclass
class ConflictArrived(Message):
    task: str
    paths: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)


@dataclass
class QueueUpdated(Message):
    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueUpdated)


@dataclass
class PoolUpdated(Message):
    workers: int
    paused: bool


@dataclass
class NoticeArrived(Message):
    message: str
    level: str = "info"


@dataclass
class RunEnded(Message):
    exit_code: int
    merged: int
    failed: int
