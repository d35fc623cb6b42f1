"""`tuiorch init`: write a commented tuiorch.toml and a TASKS.md template."""

from __future__ import annotations

from pathlib import Path

from tuiorch.cli.common import EXIT_OK, UsageError, open_repo
from tuiorch.config import ConfigError, default_config_toml
from tuiorch.git import GitRepo, current_branch

TASKS_TEMPLATE = """\
# Tasks for tuiorch
#
# Each task is a heading `## Task <id>: <title>`, then optional metadata lines, then the
# description handed to the agent. See README.md for the format.

## Task 1: Describe your first task here
priority: foundation
touches: src/

What the agent should do, in as much detail as it needs.
"""


def init(root: Path, preset: str, force: bool) -> int:
    repo = open_repo(root)
    config_path = repo.root / "tuiorch.toml"
    if config_path.exists() and not force:
        raise UsageError(f"{config_path} exists; pass --force to overwrite it")
    branch = _current_branch(repo)
    try:
        text = default_config_toml(preset, base=branch or "main")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    config_path.write_text(text, encoding="utf-8")
    print(f"wrote {config_path}" + (f' (base = "{branch}", the branch checked out)' if branch else ""))
    tasks_path = repo.root / "TASKS.md"
    if not tasks_path.exists():
        tasks_path.write_text(TASKS_TEMPLATE, encoding="utf-8")
        print(f"wrote {tasks_path}")
    return EXIT_OK


def _current_branch(repo: GitRepo) -> str | None:
    """The branch checked out in the repository (the one `init` makes the base), None when detached."""
    return current_branch(repo.root)
