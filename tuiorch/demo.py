"""`tuiorch demo`: a small repository whose TASKS.md the built-in demo agent can do, no LLM needed.

The queue shows what tuiorch does: dependencies, all three priorities, two tasks kept apart by
overlapping `touches`, slow and chatty tasks, and one deliberate merge conflict (tasks 2 and 3 both append
to README.md without declaring it, so they run side by side and the second to merge conflicts).
"""

from __future__ import annotations

from pathlib import Path

from tuiorch.config import default_config_toml
from tuiorch.git import GitError, create_repository

DEMO_NAME = "tuiorch demo"
DEMO_EMAIL = "demo@tuiorch.invalid"


class DemoError(Exception):
    """The demo repository cannot be made; str() is the user-facing message."""


PROJECT_FILES: dict[str, str] = {
    ".gitignore": "__pycache__/\n*.pyc\n",
    "README.md": """\
# calc

A tiny calculator package: the demo repository of tuiorch.

Every task in TASKS.md is carried out by tuiorch's built-in demo agent, which follows the
`write` and `append` blocks in the task's text and commits, just as a coding agent would.
""",
    "calc/__init__.py": '''\
"""calc: a tiny calculator."""

from calc.ops import add, sub

__all__ = ["add", "sub"]
''',
    "calc/ops.py": '''\
"""Arithmetic operations."""


def add(a: float, b: float) -> float:
    return a + b


def sub(a: float, b: float) -> float:
    return a - b
''',
    "tests/test_ops.py": """\
from calc.ops import add, sub


def test_add() -> None:
    assert add(2, 3) == 5


def test_sub() -> None:
    assert sub(2, 3) == -1
""",
}

TASKS_MD = '''\
# Tasks

The demo agent does each task by following its text: ```write PATH``` and ```append PATH``` blocks
edit files; `sleep: S` makes it think for S seconds; `lines: N` makes it print N lines.
Tasks 2 and 3 both append to README.md without saying so in `touches`: they run side by side and
the second to merge conflicts. Press `c` to open the conflict and resolve it.

## Task 1: Multiply and divide
priority: foundation
touches: calc/ops.py, tests/test_ops.py

Add `mul` and `div` to the operations, with tests. This one takes a while.

sleep: 1

```append calc/ops.py


def mul(a: float, b: float) -> float:
    return a * b


def div(a: float, b: float) -> float:
    if b == 0:
        raise ZeroDivisionError("division by zero")
    return a / b
```

```append tests/test_ops.py


def test_mul_and_div() -> None:
    from calc.ops import div, mul

    assert mul(4, 2.5) == 10
    assert div(9, 3) == 3
```

## Task 2: README usage section
priority: foundation
type: docs

Explain how to use calc. Edits README.md without declaring it (see task 3).

```append README.md

## Usage

    python -m calc 2 + 3
    python -m calc 7 / 2
```

## Task 3: README development section
priority: foundation
type: docs

Explain how to work on calc. Edits README.md without declaring it, like task 2, so the two run
side by side and the second to merge conflicts: the demo's deliberate conflict.

lines: 40

```write CONTRIBUTING.md
# Contributing

Run the tests with `python -m pytest -q`.
```

```append README.md

## Development

See CONTRIBUTING.md. Tests live in tests/.
```

## Task 4: Command-line interface
depends: 1
priority: feature
touches: calc/cli.py, calc/__main__.py

A `python -m calc A OP B` command line over the operations.

```write calc/cli.py
"""Command line: python -m calc A OP B."""

import argparse

from calc.ops import add, div, mul, sub

OPERATIONS = {"+": add, "-": sub, "*": mul, "/": div}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calc")
    parser.add_argument("a", type=float)
    parser.add_argument("op", choices=sorted(OPERATIONS))
    parser.add_argument("b", type=float)
    args = parser.parse_args(argv)
    print(OPERATIONS[args.op](args.a, args.b))
    return 0
```

```write calc/__main__.py
import sys

from calc.cli import main

sys.exit(main())
```

## Task 5: Power operator
priority: feature
touches: calc/ops.py, tests/test_ops.py

Add `power`. It touches the same files as task 1, so tuiorch never runs the two together.

```append calc/ops.py


def power(base: float, exponent: float) -> float:
    return base**exponent
```

```append tests/test_ops.py


def test_power() -> None:
    from calc.ops import power

    assert power(2, 10) == 1024
```

## Task 6: Calculation history
depends: 4, 5
priority: feature
touches: calc/history.py, tests/test_history.py

Keep a history of results. A chatty task: it prints a stream of output while it works.

lines: 200
rate: 100

```write calc/history.py
"""A bounded history of calculation results."""

from collections import deque


class History:
    def __init__(self, size: int = 100) -> None:
        self.results: deque[float] = deque(maxlen=size)

    def record(self, result: float) -> float:
        self.results.append(result)
        return result

    def last(self) -> float | None:
        return self.results[-1] if self.results else None
```

```write tests/test_history.py
from calc.history import History


def test_history_keeps_the_latest_results() -> None:
    history = History(size=2)
    for value in (1, 2, 3):
        history.record(value)
    assert list(history.results) == [2, 3]
    assert history.last() == 3
```

## Task 7: Export every operation
depends: 1, 5
priority: polish
touches: calc/__init__.py

Export the new operations from the package.

```write calc/__init__.py
"""calc: a tiny calculator."""

from calc.ops import add, div, mul, power, sub

__all__ = ["add", "div", "mul", "power", "sub"]
```

## Task 8: Changelog
depends: 6
priority: polish
type: docs

Start a changelog.

```write CHANGELOG.md
# Changelog

## 0.2.0

- mul, div and power operations
- command line: python -m calc A OP B
- calculation history
```
'''


def make_demo_repo(path: Path) -> Path:
    """Create the demo repository at `path` (absent or an empty directory) with one commit on main."""
    path = Path(path).expanduser().absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DemoError(f"{path} already exists and is not an empty directory; pick a new one")
    files = {**PROJECT_FILES, "TASKS.md": TASKS_MD, "tuiorch.toml": default_config_toml("demo")}
    try:
        path.mkdir(parents=True, exist_ok=True)
        create_repository(path, files, (DEMO_NAME, DEMO_EMAIL), "chore: calc demo project for tuiorch\n")
    except (OSError, GitError) as exc:
        raise DemoError(f"cannot create the demo repository at {path}: {exc}") from None
    return path
