"""Whether an agent run succeeded, and why not, in the agent's own words where it gave any."""

from __future__ import annotations

from tuiorch.agent import AgentExit
from tuiorch.agent_output import OutputParser
from tuiorch.config import Preset

#: HTTP statuses a model API answers with; a CLI that exits with the status & 0xFF is read back by these.
_HTTP_STATUSES = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529)
#: The exit code each status leaves (status & 0xFF), read back as the first status that leaves it.
_HTTP_STATUS_OF_EXIT = {status & 0xFF: status for status in reversed(_HTTP_STATUSES)}


def exited_cleanly(exit_: AgentExit) -> bool:
    """Exit code 0, neither timed out nor killed."""
    return exit_.code == 0 and not exit_.timed_out and exit_.signal is None


def succeeded(exit_: AgentExit, parser: OutputParser) -> bool:
    """The run succeeded: a clean exit, and the agent's output reported no error (a CLI may exit 0
    although its model calls failed: aider does)."""
    return exited_cleanly(exit_) and parser.error is None


def exit_words(exit_: AgentExit) -> str:
    """How a process ended, in a few words ("exited 4", "timed out", "killed by SIGTERM")."""
    if exit_.timed_out:
        return "timed out"
    if exit_.signal:
        return f"killed by {exit_.signal}"
    if exit_.error:
        return exit_.error
    return f"exited {exit_.code}"


def failure_reason(exit_: AgentExit, parser: OutputParser, stderr: list[str], preset: Preset) -> str:
    """Why an agent run failed, in the agent's own words where it gave any.

    In order: a timeout or signal; the error the agent's output reported (an API error, a turn limit);
    what its exit code means for its CLI; the last recoverable error it reported; its last stderr line;
    the bare exit code.
    """
    if exit_.timed_out or exit_.signal or exit_.error:
        return exit_words(exit_)
    meaning, where = _exit_code_meaning(exit_.code, preset)
    if parser.error:
        return f"{_clip(parser.error)} ({where})"  # one line: it heads a pane's note and a headless line
    return _explained(meaning, parser.warning or _last_line(stderr), where, exit_.code)


def _explained(meaning: str | None, words: str, where: str, code: int | None) -> str:
    """The exit code's meaning with the agent's last words (a warning or stderr line), whichever there are."""
    if meaning:
        return f"{meaning}: {_clip(words)}" if words else meaning
    return f"{_clip(words)} ({where})" if words else f"agent exited {code}"


def _exit_code_meaning(code: int | None, preset: Preset) -> tuple[str | None, str]:
    """What exit `code` means for the preset's CLI (None when nothing is known), and how to cite the code."""
    where = f"exit {code}"
    if code is None:
        return None, where
    meaning = dict(preset.exit_codes).get(code)
    if meaning is not None or not preset.http_exit_codes:
        return meaning, where
    status = _HTTP_STATUS_OF_EXIT.get(code)
    if status is None:
        return None, where
    where = f"exit {code}: HTTP {status}, as this CLI exits with the HTTP status & 0xFF"
    return f"the model API answered HTTP {status} ({where})", where


def _last_line(lines: list[str]) -> str:
    return lines[-1].strip() if lines else ""


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
