"""A conflicted file as clean runs and conflict hunks, and a hunk-by-hunk resolution with undo.

The 3-way merge itself is git's (`git merge-file --zdiff3`), so the hunks are the ones git would mark;
this module only reads its output back and applies choices. "ours" is always the base branch's side
(e.g. master) and "theirs" the task branch's, in the modal as in the markers written for an editor.
No Textual here, and no repository: the texts come in, texts and line numbers go out.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OURS, THEIRS, BOTH = "ours", "theirs", "both"
#: A file resolved in $EDITOR: every hunk of it counts as chosen, the text is the user's.
EDITED = "edited"
SIDES = (OURS, THEIRS, BOTH)
_MARKER_CHARS = "<|=>"
_MIN_MARKER = 7


class MergeFileError(Exception):
    """git merge-file could not run or said something unexpected (worded for the user)."""


@dataclass(frozen=True)
class Clean:
    """Lines both sides agree on after the merge (each line keeps its newline)."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class Hunk:
    """One conflict: the base branch's lines, the merge base's, the task's."""

    ours: tuple[str, ...]
    base: tuple[str, ...]
    theirs: tuple[str, ...]


Segment = Clean | Hunk


def marker_size(*texts: str | None) -> int:
    """A marker length no line of the inputs starts with, so every marker in git's output is unambiguous."""
    longest = 0
    for text in texts:
        for line in (text or "").splitlines():
            run = len(line) - len(line.lstrip(line[:1])) if line[:1] in _MARKER_CHARS and line else 0
            longest = max(longest, run)
    return max(_MIN_MARKER, longest + 1)


def merge_texts(base: str | None, ours: str, theirs: str) -> list[Segment]:
    """Split the 3-way merge of one file into clean runs and conflict hunks, with git's merge-file."""
    size = marker_size(base, ours, theirs)
    with tempfile.TemporaryDirectory(prefix="tuiorch-merge-") as tmp:
        paths = []
        for name, text in (("ours", ours), ("base", base or ""), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
            paths.append(str(path))
        argv = ["git", "merge-file", "-p", "--zdiff3", f"--marker-size={size}",
                "-L", "ours", "-L", "base", "-L", "theirs", *paths]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        try:
            done = subprocess.run(argv, capture_output=True, check=False, env=env)
        except OSError as exc:
            raise MergeFileError(f"could not run git merge-file: {exc}") from None
    if done.returncode < 0 or done.returncode > 127:
        raise MergeFileError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    merged = done.stdout.decode("utf-8", errors="surrogateescape")
    return parse_merged(merged, size)


def parse_merged(merged: str, size: int) -> list[Segment]:
    """Read `git merge-file -p --zdiff3` output (markers of `size`) back into segments."""
    start, middle, sep, end = ("<" * size, "|" * size, "=" * size, ">" * size)

    def is_marker(line: str, marker: str) -> bool:
        body = line.rstrip("\r\n")
        return body == marker or body.startswith(marker + " ")

    segments: list[Segment] = []
    clean: list[str] = []
    lines = merged.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not is_marker(lines[i], start):
            clean.append(lines[i])
            i += 1
            continue
        if clean:
            segments.append(Clean(tuple(clean)))
            clean = []
        parts: list[list[str]] = [[], [], []]
        part = 0
        i += 1
        while i < len(lines) and not is_marker(lines[i], end):
            if is_marker(lines[i], middle):
                part = 1
            elif lines[i].rstrip("\r\n") == sep:
                part = 2
            else:
                parts[part].append(lines[i])
            i += 1
        if i >= len(lines):
            raise MergeFileError("git merge-file left a conflict without its end marker")
        i += 1
        segments.append(Hunk(tuple(parts[0]), tuple(parts[1]), tuple(parts[2])))
    if clean:
        segments.append(Clean(tuple(clean)))
    return segments


def chosen_lines(hunk: Hunk, side: str) -> tuple[str, ...]:
    if side == OURS:
        return hunk.ours
    if side == THEIRS:
        return hunk.theirs
    if side == BOTH:
        return hunk.ours + hunk.theirs
    raise ValueError(f"unknown side {side!r}")


def hunks_of(segments: Sequence[Segment]) -> list[Hunk]:
    return [s for s in segments if isinstance(s, Hunk)]


def resolve(segments: Sequence[Segment], choices: Sequence[str | None], *, final_newline: bool = True) -> str:
    """The file with hunk i replaced by `choices[i]`'s lines; ValueError if a hunk has no choice.

    git writes a missing final newline as a newline: `final_newline=False` takes it off again.
    """
    out: list[str] = []
    index = 0
    for segment in segments:
        if isinstance(segment, Clean):
            out.extend(segment.lines)
            continue
        side = choices[index] if index < len(choices) else None
        if side is None:
            raise ValueError(f"hunk {index + 1} has no choice yet")
        out.extend(chosen_lines(segment, side))
        index += 1
    text = "".join(out)
    if not final_newline and text.endswith("\n"):
        text = text[:-1]
    return text


def render_markers(
    segments: Sequence[Segment], choices: Sequence[str | None], labels: tuple[str, str]
) -> tuple[str, list[int]]:
    """The file as an editor should see it: chosen hunks applied, open ones between conflict markers
    labelled with the real branch names (base branch first), and the 1-based line each hunk starts on."""
    ours_label, theirs_label = labels
    out: list[str] = []
    starts: list[int] = []
    index = 0
    for segment in segments:
        if isinstance(segment, Clean):
            out.extend(segment.lines)
            continue
        starts.append(len(out) + 1)
        side = choices[index] if index < len(choices) else None
        if side is None:
            out.append(f"<<<<<<< {ours_label}\n")
            out.extend(_terminated(segment.ours))
            out.append("||||||| merge base\n")
            out.extend(_terminated(segment.base))
            out.append("=======\n")
            out.extend(_terminated(segment.theirs))
            out.append(f">>>>>>> {theirs_label}\n")
        else:
            out.extend(chosen_lines(segment, side))
        index += 1
    return "".join(out), starts


def _terminated(lines: Iterable[str]) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def hunk_lines(segments: Sequence[Segment], choices: Sequence[str | None]) -> list[int]:
    """Where each hunk starts (1-based) in the file as render_markers writes it."""
    return render_markers(segments, choices, ("", ""))[1]


def context(segments: Sequence[Segment], hunk: int, lines: int = 3) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Up to `lines` clean lines just before and just after hunk number `hunk`."""
    positions = [i for i, s in enumerate(segments) if isinstance(s, Hunk)]
    at = positions[hunk]
    before = segments[at - 1] if at > 0 and isinstance(segments[at - 1], Clean) else None
    after = segments[at + 1] if at + 1 < len(segments) and isinstance(segments[at + 1], Clean) else None
    return (before.lines[-lines:] if before and lines else ()), (after.lines[:lines] if after and lines else ())


# ------------------------------------------------------------------ a whole conflict, hunk by hunk


@dataclass(frozen=True)
class ConflictFile:
    """One conflicted path. Text files carry their merge segments; others (binary, deleted on one side,
    not UTF-8) are one whole-file choice between the two sides."""

    path: str
    kind: str
    ours: str | None
    theirs: str | None
    base: str | None
    segments: tuple[Segment, ...] = ()
    binary: bool = False

    @property
    def textual(self) -> bool:
        return bool(self.segments) and any(isinstance(s, Hunk) for s in self.segments)

    @property
    def hunk_count(self) -> int:
        return len(hunks_of(self.segments)) if self.textual else 1

    @property
    def final_newline(self) -> bool:
        return any(text is None or text == "" or text.endswith("\n") for text in (self.ours, self.theirs))


def conflict_file(path: str, kind: str, ours: str | None, theirs: str | None, base: str | None,
                  *, binary: bool = False) -> ConflictFile:
    """A ConflictFile, merged with git when both sides are text."""
    if binary or ours is None or theirs is None:
        return ConflictFile(path, kind, ours, theirs, base, binary=binary)
    segments = tuple(merge_texts(base, ours, theirs))
    if not any(isinstance(s, Hunk) for s in segments):
        # The text merges cleanly (a conflict of modes or names, not of lines): still one choice to make.
        return ConflictFile(path, kind, ours, theirs, base)
    return ConflictFile(path, kind, ours, theirs, base, segments)


Key = tuple[int, int]  # (file index, hunk index in that file)


@dataclass
class Resolution:
    """The user's choices for every hunk of a conflict, with an undo history.

    `base_tip`/`task_tip` pin the commits the hunks were computed from: the resolution is committed as
    the merge of exactly those, so a main that moved meanwhile is caught by the next merge, not lost.
    """

    files: list[ConflictFile]
    labels: tuple[str, str]
    base_tip: str = ""
    task_tip: str = ""
    choices: dict[Key, str] = field(default_factory=dict)
    edited: dict[int, str] = field(default_factory=dict)
    #: Undo steps, last first out: the hunks a choice changed with their previous choices, or the file a
    #: hand edit replaced with its previous hand-edited text.
    history: list[list[tuple[Key, str | None]] | tuple[int, str | None]] = field(default_factory=list)

    @property
    def keys(self) -> list[Key]:
        """Every hunk, across all files, in file order."""
        return [(f, h) for f, file in enumerate(self.files) for h in range(file.hunk_count)]

    def choice(self, key: Key) -> str | None:
        if key[0] in self.edited:
            return EDITED
        return self.choices.get(key)

    def open_keys(self) -> list[Key]:
        return [key for key in self.keys if self.choice(key) is None]

    @property
    def done(self) -> bool:
        return not self.open_keys()

    def file_choices(self, file_index: int) -> list[str | None]:
        return [self.choices.get((file_index, h)) for h in range(self.files[file_index].hunk_count)]

    def allowed(self, key: Key, side: str) -> str | None:
        """Why `side` cannot be chosen for `key`, or None when it can."""
        file = self.files[key[0]]
        if key[0] in self.edited:
            return f"{file.path} was resolved in the editor (u undoes that)"
        if side == BOTH and not file.textual:
            return f"{file.path} is a {file.kind} conflict: take one side of the whole file"
        return None

    def choose(self, keys: Sequence[Key], side: str) -> None:
        """Choose `side` for every key (one undo step); keys resolved in the editor are left alone."""
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}")
        step = [(key, self.choices.get(key)) for key in keys if key[0] not in self.edited]
        if not step:
            return
        for key, _previous in step:
            self.choices[key] = side
        self.history.append(step)

    def set_edited(self, file_index: int, text: str) -> None:
        """The file was resolved by hand: its text wins over its hunks' choices (one undo step)."""
        self.history.append((file_index, self.edited.get(file_index)))
        self.edited[file_index] = text

    def undo(self) -> Key | None:
        """Take back the last choice (or hand edit); the first hunk it touched, or None if nothing to undo."""
        if not self.history:
            return None
        step = self.history.pop()
        if isinstance(step, tuple):
            file_index, previous_text = step
            if previous_text is None:
                self.edited.pop(file_index, None)
            else:
                self.edited[file_index] = previous_text
            return (file_index, 0)
        for key, previous in step:
            if previous is None:
                self.choices.pop(key, None)
            else:
                self.choices[key] = previous
        return step[0][0]

    def result(self, file_index: int) -> tuple[str, str | None]:
        """("text", content) for a file resolved line by line or by hand; ("side", OURS|THEIRS) for a
        whole-file choice (git then takes that side's blob, with its mode, or deletes the file)."""
        file = self.files[file_index]
        if file_index in self.edited:
            return "text", self.edited[file_index]
        choices = self.file_choices(file_index)
        if not file.textual:
            side = choices[0]
            if side is None:
                raise ValueError(f"{file.path} has no choice yet")
            return "side", side
        return "text", resolve(file.segments, choices, final_newline=file.final_newline)

    def with_markers(self, file_index: int) -> tuple[str, list[int]]:
        """The file for $EDITOR: chosen hunks applied, open ones in markers; the line of each hunk."""
        file = self.files[file_index]
        if file_index in self.edited:
            return self.edited[file_index], [1] * file.hunk_count
        if not file.textual:
            side = self.choices.get((file_index, 0))
            text = {OURS: file.ours, THEIRS: file.theirs}.get(side or "")
            if text is None:
                text = file.theirs if file.theirs is not None else (file.ours or "")
            return text, [1]
        return render_markers(file.segments, self.file_choices(file_index), self.labels)

    def display_line(self, key: Key) -> int:
        """The 1-based line hunk `key` starts on in the merged file, an open hunk counted as the base
        branch's lines (what a reader of the base branch's file would look for)."""
        file = self.files[key[0]]
        if not file.textual:
            return 1
        line = 1
        choices = self.file_choices(key[0])
        index = 0
        for segment in file.segments:
            if isinstance(segment, Clean):
                line += len(segment.lines)
                continue
            if index == key[1]:
                return line
            line += len(chosen_lines(segment, choices[index] or OURS))
            index += 1
        return line

    def line_of(self, key: Key) -> int:
        """The 1-based line hunk `key` starts on in the file as with_markers writes it."""
        lines = self.with_markers(key[0])[1]
        return lines[key[1]] if key[1] < len(lines) else 1
