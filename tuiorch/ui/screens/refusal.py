"""A screen whose keys say why they do nothing: a key bound to an action that does not apply now (shown
dimmed in the footer) tells the reason in a notification instead of passing silently."""

from __future__ import annotations

from textual import events
from textual.actions import parse


class SaysWhyNot:
    """Mix into a Screen; override `why_not`."""

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why `action` does nothing now, in a few words, or None to stay quiet."""
        return None

    def on_key(self, event: events.Key) -> None:
        active = self.active_bindings.get(event.key)  # type: ignore[attr-defined]
        if active is None or active.enabled or active.node is not self:
            return
        _, action, parameters = parse(active.binding.action)
        why = self.why_not(action, parameters)
        if why:
            self.notify(why, title=f"{event.key}: not now", severity="warning", timeout=4)  # type: ignore[attr-defined]
