"""aider's plain text output: its model errors, retries, token and cost lines, and applied edits."""

from __future__ import annotations

import re
from collections.abc import Callable

from tuiorch.agent_output.base import (
    ParsedLine,
    Parser,
    Usage,
    clip,
    plain,
)

# aider's lines: "litellm.AuthenticationError: ...", "Retrying in 0.5 seconds...",
# "Tokens: 1.2k sent, 80 received. Cost: $0.0036 message, $0.0036 session."
_AIDER_ERROR = re.compile(r"^\s*(litellm\.[A-Za-z]+Error\b.*)$")
_AIDER_RETRY = re.compile(r"^Retrying in ([\d.]+) seconds")
_AIDER_TOKENS = re.compile(r"^Tokens: ([\d.]+)([kM]?) sent,.*?([\d.]+)([kM]?) received\.")
_AIDER_COST = re.compile(r"Cost: \$[\d.]+ message, \$([\d.]+) session\.")
_AIDER_EDIT = re.compile(r"^Applied edit to (.+)$")


def _aider_count(number: str, unit: str) -> int:
    return round(float(number) * {"": 1, "k": 1_000, "M": 1_000_000}[unit])


class AiderTextParser(Parser):
    """aider's plain output. aider exits 0 when its model calls fail, so a litellm error that no later
    answer made good is the run's error; its usage line per answer gives tokens and the session's cost."""

    def __init__(self) -> None:
        super().__init__()
        self._answers = Usage()
        #: How many more lines an error's message may go on over (aider wraps at 80 columns, then explains
        #: in a line of its own; a blank line ends it).
        self._error_goes_on = 0

    def feed(self, line: str) -> ParsedLine:
        text = line.rstrip("\r\n")
        result = plain(text)
        if self._error_goes_on and self.error and _more_words(text, result):
            self.error = self.warning = clip(f"{self.error} {text.strip()}", 300)
            self._error_goes_on -= 1
            return result
        self._error_goes_on = 0
        for pattern, read in _LINES:
            if found := pattern.match(text):
                result.status = read(self, found, text)
                break
        return result

    def _model_error(self, found: re.Match[str], text: str) -> str:
        self.error = self.warning = clip(found.group(1), 300)
        self._error_goes_on = 2
        return clip(f"model call failed: {found.group(1)}", 80)

    def _retry(self, found: re.Match[str], text: str) -> str:
        return f"retrying the model call in {found.group(1)}s"

    def _tokens(self, found: re.Match[str], text: str) -> str:
        self.error = None  # an answer came: earlier errors were retried away
        sent = _aider_count(found.group(1), found.group(2))
        received = _aider_count(found.group(3), found.group(4))
        self._answers = Usage(self._answers.input_tokens + sent, self._answers.output_tokens + received)
        self.usage = Usage(self._answers.input_tokens, self._answers.output_tokens, self._session_cost(text))
        return "thinking"

    def _cost(self, found: re.Match[str], text: str) -> None:
        self.usage = Usage(self._answers.input_tokens, self._answers.output_tokens, float(found.group(1)))

    def _edit(self, found: re.Match[str], text: str) -> str:
        return f"edited {clip(found.group(1), 60)}"

    def feed_stderr(self, line: str) -> ParsedLine:
        return self.feed(line)  # aider's errors may come on either stream

    def _session_cost(self, text: str) -> float | None:
        found = _AIDER_COST.search(text)
        if found:
            return float(found.group(1))
        return self.usage.cost_usd if self.usage else None


#: aider's lines that say something, in the order they are tried: each sets the line's status (or none).
_LINES: tuple[tuple[re.Pattern[str], Callable[[AiderTextParser, re.Match[str], str], str | None]], ...] = (
    (_AIDER_ERROR, AiderTextParser._model_error),
    (_AIDER_RETRY, AiderTextParser._retry),
    (_AIDER_TOKENS, AiderTextParser._tokens),
    (_AIDER_COST, AiderTextParser._cost),
    (_AIDER_EDIT, AiderTextParser._edit),
)


def _more_words(text: str, result: ParsedLine) -> bool:
    """Whether a line goes on with the error before it: words that are no line of aider's own."""
    known = any(pattern.match(text) for pattern in (_AIDER_ERROR, _AIDER_RETRY, _AIDER_TOKENS, _AIDER_EDIT))
    return bool(text.strip()) and not known and result.progress is None
