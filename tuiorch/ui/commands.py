"""Command palette: the main screen's actions, offered only where they apply right now."""

from __future__ import annotations

from functools import partial
from typing import cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tuiorch.ui.availability import ActionJudge
from tuiorch.ui.bindings import MAIN_BINDINGS


class TuiorchCommands(Provider):
    def _commands(self) -> list[tuple[str, str, str]]:
        """(title, help, action) for every binding whose action applies to the current selection."""
        main = self._main_screen()
        found = []
        for binding in MAIN_BINDINGS:
            if binding.id in ("interrupt", "command_palette", "focus_next", "focus_previous"):
                continue
            name, _, args = binding.action.partition("(")
            params = tuple(arg.strip("'\") ") for arg in args.split(",")) if args else ()
            # applies(), not check_action(): while the palette is open the main screen's keys are hidden.
            if not main.applies(name, params):
                continue
            key = self.app.get_key_display(binding)
            found.append((f"{binding.description} ({key})", binding.tooltip, binding.action))
        return found

    def _main_screen(self) -> ActionJudge:
        """The main screen (the first on the stack): its selection decides, and its actions run."""
        return cast(ActionJudge, self.app.screen_stack[0])

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self._main_screen().run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = max(matcher.match(title), matcher.match(help_text))
            if score > 0:
                run = partial(self._main_screen().run_action, action)
                yield Hit(score, matcher.highlight(title), run, help=help_text)
