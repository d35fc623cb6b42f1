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
from typing import Any

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
    runs = (_marker_run(line) for text in texts for line in (text or "").splitlines())
    return max(_MIN_MARKER, max(runs, default=0) + 1)


def _marker_run(line: str) -> int:
    """How many marker characters the line starts with (one repeated character of <|=>)."""
    if not line or line[0] not in _MARKER_CHARS:
        return 0
    return len(line) - len(line.lstrip(line[0]))


def merge_texts(base: str | None, ours: str, theirs: str) -> list[Segment]:
    """Split the 3-way merge of one file into clean runs and conflict hunks, with git's merge-file."""
    size = marker_size(base, ours, theirs)
    with tempfile.TemporaryDirectory(prefix="tuiorch-merge-") as tmp:
        inputs = (("ours", ours), ("base", base or ""), ("theirs", theirs))
        merged = _merge_file([_written(Path(tmp) / name, text) for name, text in inputs], size)
    return parse_merged(merged.decode("utf-8", errors="surrogateescape"), size)


def _written(path: Path, text: str) -> str:
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return str(path)


def _merge_file(paths: list[str], size: int) -> bytes:
    """git merge-file's merge of the three files (ours, base, theirs), conflicts in markers of `size`."""
    argv = ["git", "merge-file", "-p", "--zdiff3", f"--marker-size={size}",
            "-L", "ours", "-L", "base", "-L", "theirs", *paths]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(argv, capture_output=True, check=False, env=env)
    except OSError as exc:
        raise MergeFileError(f"could not run git merge-file: {exc}") from None
    if not 0 <= done.returncode <= 127:
        raise MergeFileError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _is_marker(line: str, marker: str) -> bool:
    body = line.rstrip("\r\n")
    return body == marker or body.startswith(marker + " ")


def parse_merged(merged: str, size: int) -> list[Segment]:
    """Read `git merge-file -p --zdiff3` output (markers of `size`) back into segments."""
    segments: list[Segment] = []
    lines = merged.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if _is_marker(lines[i], "<" * size):
            hunk, i = _read_hunk(lines, i + 1, size)
            segments.append(hunk)
        else:
            end = next((j for j in range(i, len(lines)) if _is_marker(lines[j], "<" * size)), len(lines))
            segments.append(Clean(tuple(lines[i:end])))
            i = end
    return segments


def _read_hunk(lines: list[str], start: int, size: int) -> tuple[Hunk, int]:
    """The hunk whose lines begin at `start` (just after its start marker), and the index after its end."""
    parts: list[list[str]] = [[], [], []]
    part = 0
    i = start
    while i < len(lines) and not _is_marker(lines[i], ">" * size):
        if _is_marker(lines[i], "|" * size):
            part = 1
        elif lines[i].rstrip("\r\n") == "=" * size:
            part = 2
        else:
            parts[part].append(lines[i])
        i += 1
    if i >= len(lines):
        raise MergeFileError("git merge-file left a conflict without its end marker")
    return Hunk(tuple(parts[0]), tuple(parts[1]), tuple(parts[2])), i + 1


def chosen_lines(hunk: Hunk, side: str) -> tuple[str, ...]:
    lines = {OURS: hunk.ours, THEIRS: hunk.theirs, BOTH: hunk.ours + hunk.theirs}.get(side)
    if lines is None:
        raise ValueError(f"unknown side {side!r}")
    return lines


def hunks_of(segments: Sequence[Segment]) -> list[Hunk]:
    return [s for s in segments if isinstance(s, Hunk)]


def resolve(segments: Sequence[Segment], choices: Sequence[str | None], *, final_newline: bool = True) -> str:
    """The file with hunk i replaced by `choices[i]`'s lines; ValueError if a hunk has no choice.

    git writes a missing final newline as a newline: `final_newline=False` takes it off again.
    """
    sides = _per_hunk(choices, len(hunks_of(segments)))
    if None in sides:
        raise ValueError(f"hunk {sides.index(None) + 1} has no choice yet")
    text, _starts = render_markers(segments, sides, ("", ""))
    return text if final_newline else text.removesuffix("\n")


def _per_hunk(choices: Sequence[str | None], hunks: int) -> list[str | None]:
    """The choice for each of `hunks` hunks: None (open) for those past the end of `choices`."""
    return [*choices[:hunks], *[None] * (hunks - len(choices))]


def render_markers(
    segments: Sequence[Segment], choices: Sequence[str | None], labels: tuple[str, str]
) -> tuple[str, list[int]]:
    """The file as an editor should see it: chosen hunks applied, open ones between conflict markers
    labelled with the real branch names (base branch first), and the 1-based line each hunk starts on."""
    sides = iter(_per_hunk(choices, len(hunks_of(segments))))
    out: list[str] = []
    starts: list[int] = []
    for segment in segments:
        if isinstance(segment, Clean):
            out.extend(segment.lines)
            continue
        starts.append(len(out) + 1)
        side = next(sides)
        out.extend(_in_markers(segment, labels) if side is None else chosen_lines(segment, side))
    return "".join(out), starts


def _in_markers(hunk: Hunk, labels: tuple[str, str]) -> list[str]:
    ours_label, theirs_label = labels
    return [
        f"<<<<<<< {ours_label}\n",
        *_terminated(hunk.ours),
        "||||||| merge base\n",
        *_terminated(hunk.base),
        "=======\n",
        *_terminated(hunk.theirs),
        f">>>>>>> {theirs_label}\n",
    ]


def _terminated(lines: Iterable[str]) -> list[str]:
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def hunk_lines(segments: Sequence[Segment], choices: Sequence[str | None]) -> list[int]:
    """Where each hunk starts (1-based) in the file as render_markers writes it."""
    return render_markers(segments, choices, ("", ""))[1]


def context(segments: Sequence[Segment], hunk: int, lines: int = 3) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Up to `lines` clean lines just before and just after hunk number `hunk`."""
    at = [i for i, s in enumerate(segments) if isinstance(s, Hunk)][hunk]
    if not lines:
        return (), ()
    return _clean_lines(segments, at - 1)[-lines:], _clean_lines(segments, at + 1)[:lines]


def _clean_lines(segments: Sequence[Segment], index: int) -> tuple[str, ...]:
    """The lines of the clean run at `index`; none when there is no clean run there."""
    segment = segments[index] if 0 <= index < len(segments) else None
    return segment.lines if isinstance(segment, Clean) else ()


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
        return any(isinstance(s, Hunk) for s in self.segments)

    @property
    def hunk_count(self) -> int:
        return len(hunks_of(self.segments)) if self.textual else 1

    @property
    def final_newline(self) -> bool:
        return any(not text or text.endswith("\n") for text in (self.ours, self.theirs))

    def whole_text(self, side: str | None) -> str:
        """The file an editor opens for a whole-file conflict: the chosen side, else the task's, else the
        base branch's ("" when both are deleted)."""
        chosen = {OURS: self.ours, THEIRS: self.theirs}.get(side or "")
        return next(text for text in (chosen, self.theirs, self.ours, "") if text is not None)


def conflict_file(path: str, kind: str, ours: str | None, theirs: str | None, base: str | None,
                  *, binary: bool = False) -> ConflictFile:
    """A ConflictFile, merged with git when both sides are text."""
    if binary or ours is None or theirs is None:
        return ConflictFile(path, kind, ours, theirs, base, binary=binary)
    merged = ConflictFile(path, kind, ours, theirs, base, tuple(merge_texts(base, ours, theirs)))
    # A text that merges cleanly (a conflict of modes or names, not of lines) is still one choice to make.
    return merged if merged.textual else ConflictFile(path, kind, ours, theirs, base)


Key = tuple[int, int]  # (file index, hunk index in that file)


def _set_or_drop(mapping: dict[Any, str], key: object, value: str | None) -> None:
    """Put back a previous value: None means there was none."""
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


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
            _set_or_drop(self.edited, *step)
            return (step[0], 0)
        for key, previous in step:
            _set_or_drop(self.choices, key, previous)
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
            return file.whole_text(self.choices.get((file_index, 0))), [1]
        return render_markers(file.segments, self.file_choices(file_index), self.labels)

    def display_line(self, key: Key) -> int:
        """The 1-based line hunk `key` starts on in the merged file, an open hunk counted as the base
        branch's lines (what a reader of the base branch's file would look for)."""
        file = self.files[key[0]]
        if not file.textual:
            return 1
        sides = [side or OURS for side in self.file_choices(key[0])]
        return render_markers(file.segments, sides, self.labels)[1][key[1]]

    def line_of(self, key: Key) -> int:
        """The 1-based line hunk `key` starts on in the file as with_markers writes it."""
        lines = self.with_markers(key[0])[1]
        return lines[key[1]] if key[1] < len(lines) else 1
