"""Projects for the review and conflict tests: a `master` repository whose two tasks conflict deep in a file."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import git, make_repo

LINES = 2000


def numbered(changes: dict[int, str] | None = None) -> str:
    """big.py: `value_N = N` on line N, with `changes` (line -> text) applied."""
    changes = changes or {}
    return "".join(changes.get(i, f"value_{i} = {i}") + "\n" for i in range(1, LINES + 1))


ONE = numbered({10: "value_10 = 'one'", 1600: "value_1600 = 'one'"})
TWO = numbered({10: "value_10 = 'two'", 1600: "value_1600 = 'two'", 1900: "value_1900 = 'two only'"})


def write_block(path: str, text: str) -> str:
    return f"```write {path}\n{text}```\n"


def deep_conflict_repo(root: Path, *, workers: int = 2, merge: str = "", second_sleep: float = 1.0,
                       second_extra: str = "") -> Path:
    """Base branch `master` holds big.py; task 1 and task 2 both edit lines 10 and 1,600 (task 2 also line
    1,900, cleanly). Task 2 takes longer, so task 1 merges first and task 2 is the one in conflict."""
    repo = make_repo(root, {"big.py": numbered()}, branch="master")
    (repo / "tuiorch.toml").write_text(
        f'base = "master"\nworkers = {workers}\n\n[agent]\npreset = "demo"\ntimeout = "60s"\nstuck_after = "0"\n'
        + (f"\n[merge]\n{merge}\n" if merge else "")
    )
    (repo / "TASKS.md").write_text(
        "## Task 1: One edits big.py\n\n" + write_block("big.py", ONE)
        + f"\n## Task 2: Two edits big.py\n\nsleep: {second_sleep}\n{second_extra}\n" + write_block("big.py", TWO)
    )
    git(repo, "add", "tuiorch.toml", "TASKS.md")
    git(repo, "commit", "-q", "-m", "add tasks")
    return repo
