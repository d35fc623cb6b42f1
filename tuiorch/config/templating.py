"""One `{placeholder}` substitution for argv, path, branch and commit-message templates."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuiorch.config.settings import Config

# A placeholder is "{name}" with an identifier inside; other braces (JSON, shell) are left alone.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_placeholders(template: str, allowed: Sequence[str]) -> str | None:
    """The first "{name}" in `template` that is not one of `allowed`, or None."""
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in allowed:
            return match.group(0)
    return None


def placeholder_error(found: str, allowed: Sequence[str]) -> str:
    return f"unknown placeholder {found}; allowed: " + ", ".join("{" + name + "}" for name in allowed)


def substitute(template: str, values: Mapping[str, str]) -> str:
    # One pass: text that a value brings in is never substituted again.
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def render_argv(template: Sequence[str], *, prompt: str, prompt_file: str, worktree: str) -> list[str]:
    """Substitute {prompt}, {prompt_file}, {worktree} inside each argument; one argument stays one argument."""
    values = {"prompt": prompt, "prompt_file": prompt_file, "worktree": worktree}
    return [substitute(argument, values) for argument in template]


def expand_path_template(template: str, *, repo: str, id: str) -> str:
    """Render a `worktrees` or `branch` template."""
    return substitute(template, {"repo": repo, "id": id})


def worktree_dir(config: Config, repo_root: Path, task_id: str = "") -> Path:
    """Where task worktrees go: the `worktrees` template for one task, or (no id) the folder under every
    task's, i.e. the template's part before any {id}; relative templates are taken from the repo root."""
    template = config.worktrees if task_id else config.worktrees.split("{id}")[0]
    folder = Path(expand_path_template(template, repo=repo_root.name, id=task_id))
    return folder if folder.is_absolute() else (repo_root / folder).resolve()


def branch_name(config: Config, task_id: str, repo: str) -> str:
    return expand_path_template(config.branch, repo=repo, id=task_id)


_TRAILER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:\s")


def render_commit_message(
    template: str, *, type: str, title: str, id: str, agent_name: str, agent_email: str
) -> str:
    """Render [merge] message. A trailer line with a placeholder that rendered empty is dropped, so a preset
    without an agent identity gives no "Co-Authored-By:  <>" (a half-empty trailer is as broken as an empty one).
    """
    values = {"type": type, "title": title, "id": id, "agent_name": agent_name, "agent_email": agent_email}
    lines = [substitute(line, values) for line in template.split("\n") if not _half_empty_trailer(line, values)]
    return "\n".join(lines).rstrip()


def _half_empty_trailer(line: str, values: dict[str, str]) -> bool:
    """A trailer line ("Key: value") with a placeholder that renders empty."""
    if not _TRAILER.match(line):
        return False
    used = [match.group(1) for match in _PLACEHOLDER.finditer(line) if match.group(1) in values]
    return any(not values[name].strip() for name in used)
