"""Turn agents' machine-readable output into what a person wants to see: text, tool activity, progress.

One parser per output format (config.Preset.output), each in its own module. Each takes the agent's stdout
line by line (and its stderr lines apart) and returns a ParsedLine: the text for the log pane (None hides
noise such as tool results), reported progress, a short status ("running tool Edit", "retrying API 3/10
after 529") and whether the line says the run failed. The parser also keeps what the run cost (`usage`),
the error that ended the run in the agent's own words (`error`) and the last recoverable one (`warning`).
The log file keeps every raw line; this only shapes what the panes show. Nothing here raises on bad input:
a line that is not the JSON we expect is shown as it is.
"""

from tuiorch.agent_output.aider import AiderTextParser
from tuiorch.agent_output.base import (
    OutputParser,
    ParsedLine,
    Parser,
    Progress,
    TextParser,
    Usage,
    format_usage,
    last_progress,
    parse_progress,
)
from tuiorch.agent_output.claude import ClaudeStreamParser
from tuiorch.agent_output.codex import CodexJsonParser
from tuiorch.agent_output.gemini import GeminiStreamParser
from tuiorch.agent_output.opencode import OpencodeJsonParser

PARSERS: dict[str, type[Parser]] = {
    "text": TextParser,
    "aider-text": AiderTextParser,
    "claude-stream": ClaudeStreamParser,
    "codex-json": CodexJsonParser,
    "gemini-stream": GeminiStreamParser,
    "opencode-json": OpencodeJsonParser,
}


def make_output_parser(fmt: str) -> OutputParser:
    """A fresh parser for one agent run. Unknown formats fall back to plain text."""
    return PARSERS.get(fmt, TextParser)()


__all__ = [
    "PARSERS",
    "AiderTextParser",
    "ClaudeStreamParser",
    "CodexJsonParser",
    "GeminiStreamParser",
    "OpencodeJsonParser",
    "OutputParser",
    "ParsedLine",
    "Progress",
    "TextParser",
    "Usage",
    "format_usage",
    "last_progress",
    "make_output_parser",
    "parse_progress",
]
