"""Command palette: the main screen's actions, offered only where they apply right now."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tuiorch.ui.bindings import MAIN_BINDINGS

if TYPE_CHECKING:
    from tuiorch.ui.app import TuiorchApp


class TuiorchCommands(Provider):
    def _commands(self) -> list[tuple[str, str, str]]:
        """(title, help, action) for every binding whose action applies to the current selection."""
        app: TuiorchApp = self.app  # type: ignore[assignment]
        found = []
        for binding in MAIN_BINDINGS:
            if binding.id in ("interrupt", "command_palette", "focus_next", "focus_previous"):
                continue
            name, _, args = binding.action.partition("(")
            params = tuple(arg.strip("'\") ") for arg in args.split(",")) if args else ()
            # applies(), not check_action(): while the palette is open the main screen's keys are hidden.
            if not app.applies(name, params):
                continue
            key = app.get_key_display(binding)
            found.append((f"{binding.description} ({key})", binding.tooltip, binding.action))
        return found

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = max(matcher.match(title), matcher.match(help_text))
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
