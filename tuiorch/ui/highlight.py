"""Syntax highlighting of a few lines of a file, by the file's name, for the diff and conflict screens."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import PurePosixPath

from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

#: A theme that draws no background of its own: the screens tint added, removed and chosen lines.
THEME = "ansi_dark"
#: Longer lines are highlighted as plain text (a minified file must not stall the screen).
MAX_HIGHLIGHT_CHARS = 2_000


@lru_cache(maxsize=256)
def lexer_name(path: str) -> str:
    try:
        return get_lexer_for_filename(PurePosixPath(path).name).aliases[0]
    except (ClassNotFound, IndexError):
        return "text"


def _background_only(style: str | Style) -> bool:
    parsed = Style.parse(style) if isinstance(style, str) else style
    return parsed.color is None and parsed.bgcolor is not None


def highlight_lines(path: str, lines: Sequence[str]) -> list[Text]:
    """`lines` (with or without their newlines) highlighted as `path`'s language, one Text per line."""
    plain = [line.rstrip("\r\n").expandtabs(4) for line in lines]
    if not plain:
        return []
    lexer = lexer_name(path)
    if lexer == "text" or any(len(line) > MAX_HIGHLIGHT_CHARS for line in plain):
        return [Text(line) for line in plain]
    return _highlighted(plain, lexer)


def _highlighted(plain: list[str], lexer: str) -> list[Text]:
    """One Text per line, coloured by pygments' `lexer`."""
    syntax = Syntax("", lexer, theme=THEME, background_color="default")
    text = syntax.highlight("\n".join(plain) + "\n")
    # Only the token colours: a background (even "default") would paint over the screen's tints.
    text.style = ""
    text.spans = [span for span in text.spans if not _background_only(span.style)]
    parts = text.split("\n", allow_blank=True)
    return [*parts[: len(plain)], *(Text(line) for line in plain[len(parts) :])]
