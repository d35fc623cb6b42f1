"""An agent's output streams: bytes into the shared log file a whole line at a time, and into lines for
its owner (a flooding agent's burst split in one go, an endless line cut short)."""

from __future__ import annotations

from typing import BinaryIO

#: Lines longer than this reach `on_line` and `tail` cut short (the log file keeps every byte).
MAX_LINE_CHARS = 64 * 1024
#: Prefix of each stderr line in the log file.
STDERR_MARK = "[stderr] "
#: An unfinished line is held back from the log (so the other stream cannot land inside it) up to this size.
LOG_HOLD_BYTES = 1024 * 1024


class LogLines:
    """One stream's bytes into the shared log file, a whole line at a time.

    The unfinished end of a line is held back (up to LOG_HOLD_BYTES), so the other stream's lines land
    between lines, never inside one. `mark` starts every line (stderr's).
    """

    def __init__(self, log: BinaryIO, mark: bytes) -> None:
        self.log = log
        self.mark = mark
        self.held = bytearray()
        self.at_line_start = True

    def write(self, chunk: bytes) -> None:
        self.held += chunk
        cut = self.held.rfind(b"\n") + 1
        if len(self.held) - cut > LOG_HOLD_BYTES:
            cut = len(self.held)  # a line this long is written as it comes
        self._out(cut)

    def close(self) -> None:
        """The stream ended: write what is held (a marked line gets its newline)."""
        if self.held and self.mark:
            self.held += b"\n"
        self._out(len(self.held))

    def _out(self, cut: int) -> None:
        if cut <= 0 or self.log.closed:  # closed: the run was cancelled and has gone
            return
        data = bytes(self.held[:cut])
        del self.held[:cut]
        if self.mark:
            data = self._marked(data)
        self.log.write(data)
        self.log.flush()

    def _marked(self, data: bytes) -> bytes:
        """`data` with the mark starting each of its lines (the first only when it starts a line)."""
        ends_line = data.endswith(b"\n")
        body = data[:-1] if ends_line else data
        data = body.replace(b"\n", b"\n" + self.mark) + (b"\n" if ends_line else b"")
        if self.at_line_start:
            data = self.mark + data
        self.at_line_start = ends_line
        return data


class LineSplitter:
    """One stream's bytes into lines, a read burst at a time.

    A burst is decoded and split in one go (a flooding agent prints thousands of lines a read); a line
    longer than MAX_LINE_CHARS is cut short (what reaches the owner; the log keeps every byte).
    """

    def __init__(self) -> None:
        self.pending = bytearray()  # the start of a line whose end has not arrived yet (bounded)
        self.dropped = 0  # bytes of that line not kept in `pending` (they are in the log)

    def feed(self, chunk: bytes) -> list[str]:
        """The lines `chunk` completes (none when it holds no newline)."""
        last_newline = chunk.rfind(b"\n")
        if last_newline < 0:
            self.dropped += _append_bounded(self.pending, chunk)
            return []
        first_newline = chunk.find(b"\n")
        self.dropped += _append_bounded(self.pending, chunk[:first_newline])
        lines = [_line_text(self.pending, self.dropped)]
        if first_newline < last_newline:
            body = chunk[first_newline + 1 : last_newline].decode("utf-8", errors="replace")
            lines += [_cut(line.rstrip("\r")) for line in body.split("\n")]
        self.pending.clear()
        self.dropped = _append_bounded(self.pending, chunk[last_newline + 1 :])
        return lines

    def finish(self) -> list[str]:
        """The stream ended: its unfinished last line, if any."""
        return [_line_text(self.pending, self.dropped)] if self.pending or self.dropped else []


def _append_bounded(pending: bytearray, data: bytes) -> int:
    """Append what fits under MAX_LINE_CHARS; return how many bytes did not fit."""
    room = max(0, MAX_LINE_CHARS - len(pending))
    pending += data[:room]
    return max(0, len(data) - room)


def _line_text(data: bytearray, dropped: int) -> str:
    text = data.decode("utf-8", errors="replace").rstrip("\r")
    return text + f" [… {dropped} more bytes in the log]" if dropped else text


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return line[:MAX_LINE_CHARS] + f" [… {len(line) - MAX_LINE_CHARS} more characters in the log]"
