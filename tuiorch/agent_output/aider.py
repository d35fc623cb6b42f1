"""aider's plain text output: its model errors, retries, token and cost lines, and applied edits."""

from __future__ import annotations

import re

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
        known = any(
            pattern.match(text) for pattern in (_AIDER_ERROR, _AIDER_RETRY, _AIDER_TOKENS, _AIDER_EDIT)
        )
        if self._error_goes_on and text.strip() and not known and result.progress is None and self.error:
            self.error = self.warning = clip(f"{self.error} {text.strip()}", 300)
            self._error_goes_on -= 1
            return result
        self._error_goes_on = 0
        if error := _AIDER_ERROR.match(text):
            self.error = self.warning = clip(error.group(1), 300)
            self._error_goes_on = 2
            result.status = clip(f"model call failed: {error.group(1)}", 80)
        elif retry := _AIDER_RETRY.match(text):
            result.status = f"retrying the model call in {retry.group(1)}s"
        elif tokens := _AIDER_TOKENS.match(text):
            self.error = None  # an answer came: earlier errors were retried away
            sent = _aider_count(tokens.group(1), tokens.group(2))
            received = _aider_count(tokens.group(3), tokens.group(4))
            self._answers = Usage(self._answers.input_tokens + sent, self._answers.output_tokens + received)
            self.usage = Usage(
                self._answers.input_tokens, self._answers.output_tokens, self._session_cost(text)
            )
            result.status = "thinking"
        elif cost := _AIDER_COST.match(text):
            self.usage = Usage(self._answers.input_tokens, self._answers.output_tokens, float(cost.group(1)))
        elif edit := _AIDER_EDIT.match(text):
            result.status = f"edited {clip(edit.group(1), 60)}"
        return result

    def feed_stderr(self, line: str) -> ParsedLine:
        return self.feed(line)  # aider's errors may come on either stream

    def _session_cost(self, text: str) -> float | None:
        found = _AIDER_COST.search(text)
        if found:
            return float(found.group(1))
        return self.usage.cost_usd if self.usage else None
