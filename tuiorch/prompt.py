"""Prompt templates for task agents and conflict-resolver agents, and their rendering.

Rendering is one regex pass over the template: values that came from the task (which may hold braces or
text that looks like a placeholder) are inserted verbatim and never substituted again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuiorch.tasks import Task

__all__ = [
    "BUILTIN_TEMPLATE",
    "RESOLVE_TEMPLATE",
    "PromptError",
    "load_template",
    "render_prompt",
    "render_resolve_prompt",
]

# Marker lines the demo agent parses; keep them in step with tuiorch/demo_plan.py.
WORKTREE_MARKER = "You are working in a git worktree at: "
BRANCH_MARKER = "This is an isolated copy of the repository on branch "
TASK_HEADING = "## Your Task: "
TASK_ID_MARKER = "- Task id: "
TYPE_MARKER = "- Commit type: "
# The task list is never named in a prompt: aider pulls files a prompt names into its chat as editable.
BODY_START = "The task:"
BODY_END = "## Requirements:"
RESOLVE_MARKER = "You are resolving a merge conflict in a git worktree at: "
PATHS_HEADING = "## Conflicting paths"

BUILTIN_TEMPLATE = """\
You are working in a git worktree at: {worktree_path}

This is an isolated copy of the repository on branch {branch_name}.
You can freely edit files without affecting other parallel agents.

## Your Task: {task_title} (Task {task_number})

- Task id: {task_id}
- Commit type: {type}
- Depends on (already merged into your branch's base): {depends}
- Files and folders it is expected to touch: {touches}

The task:
{task_description}

## Requirements:
{requirements}

## Steps:
1. Read relevant existing code to understand patterns
2. Implement the task following existing conventions
3. Build and run the project's tests to verify your work
{commit_step}

## Reporting progress:
While you work, print a progress line on its own line now and then, in one of these forms:
PROGRESS: 3/5 writing tests
PROGRESS: 60%

## Important:
- Work ONLY in {worktree_path}
{commit_rules}
"""

RESOLVE_TEMPLATE = """\
You are resolving a merge conflict in a git worktree at: {worktree_path}

The worktree is on branch {branch_name}, the work for task {task_id} ("{task_title}").
The base branch has been merged into it and the merge stopped with conflicts; they are yours to resolve.

## Conflicting paths
{conflict_paths}

## What to do:
1. For each conflicting path, edit the file in {worktree_path} so that it combines BOTH sides: keep
   the intent of the base branch's changes and of the task's changes.
2. Remove every conflict marker (lines starting with <<<<<<<, =======, |||||||, >>>>>>>).
{resolve_commit_step}
5. Print progress on its own line as you go, e.g. `PROGRESS: 1/3 resolved README.md`.

Work ONLY in {worktree_path}. Do NOT push, do NOT switch branches, do NOT abort the merge.

## The versions of each file
{conflict_files}
"""

# What the prompts say about committing: the agent commits itself where its CLI lets it, otherwise
# tuiorch commits for it and the prompt must not ask for what the agent's sandbox forbids.
_COMMIT_STEP = "4. Commit your changes"
_NO_COMMIT_STEP = "4. Leave your changes uncommitted: tuiorch commits them for you"
_COMMIT_RULES = """\
- Commit to your {branch_name} branch
- Do NOT merge to main - the orchestrator handles that
- Do NOT push - orchestrator handles that
- Use commit message format:
  ```
{commit_message_indented}
  ```"""
_NO_COMMIT_RULES = """\
- Do NOT commit, merge or push: tuiorch commits your changes on {branch_name} with the task's message
  and merges them"""
_RESOLVE_COMMIT_STEP = """\
3. `git add` each resolved path.
4. Commit the merge with `git commit --no-edit` (keep the prepared merge message)."""
_RESOLVE_NO_COMMIT_STEP = """\
3. Leave the result unstaged and uncommitted: tuiorch stages it and commits the merge.
4. Do NOT run git add, git commit or git merge."""


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PromptError(Exception):
    """A prompt template that cannot be used; str() is the user-facing message."""


def load_template(path: str | Path | None, *, root: Path | None = None) -> str:
    """The template text at `path` (relative to `root`), or the built-in one when `path` is empty."""
    if path is None or not str(path).strip():
        return BUILTIN_TEMPLATE
    # Joined to root, an absolute path stays as it is.
    target = Path(root or ".") / Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(_unreadable(exc, target)) from None
    if not text.strip():
        raise PromptError(f"prompt template is empty: {target}")
    return text


#: How the common reasons a template cannot be read are told.
_UNREADABLE: tuple[tuple[type[Exception], str], ...] = (
    (FileNotFoundError, "prompt template not found: {}"),
    (IsADirectoryError, "prompt template is a directory, not a file: {}"),
    (UnicodeDecodeError, "prompt template is not UTF-8 text: {}"),
)


def _unreadable(exc: OSError | UnicodeDecodeError, target: Path) -> str:
    for kind, wording in _UNREADABLE:
        if isinstance(exc, kind):
            return wording.format(target)
    return f"cannot read prompt template {target}: {getattr(exc, 'strerror', None) or exc}"


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` for each known name in one pass; unknown `{...}` stays as written.

    Template lines that use an empty agent identity are dropped (a trailer with empty values is left out).
    """
    empty = ["{" + name + "}" for name in ("agent_name", "agent_email") if not values.get(name)]
    kept = "".join(line for line in template.splitlines(keepends=True) if not _uses_any(line, empty))
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), kept)


def _uses_any(line: str, placeholders: list[str]) -> bool:
    return any(placeholder in line for placeholder in placeholders)


def default_commit_message(task: Task, agent_name: str, agent_email: str) -> str:
    """The message the built-in prompt asks for when the caller does not pass the configured one."""
    trailer = f"\nCo-Authored-By: {agent_name} <{agent_email}>" if agent_name and agent_email else ""
    return f"{task.type}: {task.title}\n\nRefs: TASKS.md#task-{task.id}{trailer}"


def task_values(
    task: Task,
    *,
    worktree: Path | str,
    branch: str,
    agent_name: str = "",
    agent_email: str = "",
    commits: bool = True,
    commit_message: str = "",
) -> dict[str, str]:
    message = commit_message or default_commit_message(task, agent_name, agent_email)
    return {
        "worktree_path": str(worktree),
        "branch_name": branch,
        "task_title": task.title,
        "short_description": task.title,
        "task_number": task.id,
        "task_id": task.id,
        "task_description": task.description.strip("\n") or "(no description beyond the title)",
        "type": task.type,
        "depends": ", ".join(task.depends) or "none",
        "touches": ", ".join(task.touches) or "not declared",
        "agent_name": agent_name,
        "agent_email": agent_email,
        **_commit_values(message, branch, commits),
    }


#: (commit step, resolve commit step, commit rules) for an agent that commits, and for one that does not.
_COMMIT_TEXTS = {
    True: (_COMMIT_STEP, _RESOLVE_COMMIT_STEP, _COMMIT_RULES),
    False: (_NO_COMMIT_STEP, _RESOLVE_NO_COMMIT_STEP, _NO_COMMIT_RULES),
}


def _commit_values(message: str, branch: str, commits: bool) -> dict[str, str]:
    step, resolve_step, rules = _COMMIT_TEXTS[bool(commits)]
    indented = "\n".join(f"  {line}" if line else "" for line in message.split("\n"))
    return {
        "commit_message": message,
        "commit_step": step,
        "resolve_commit_step": resolve_step,
        "commit_rules": rules.replace("{branch_name}", branch).replace("{commit_message_indented}", indented),
    }


def render_prompt(
    template: str,
    *,
    task: Task,
    worktree: Path | str,
    branch: str,
    agent_name: str = "",
    agent_email: str = "",
    extra: str = "",
    commits: bool = True,
    commit_message: str = "",
) -> str:
    """The prompt for one task attempt. `extra` (e.g. what went wrong last time) fills {requirements}
    and {extra}; a template that has neither gets it appended at the end. `commits`: whether the agent
    can commit (else the prompt tells it tuiorch will); `commit_message`: the configured message."""
    values = task_values(
        task,
        worktree=worktree,
        branch=branch,
        agent_name=agent_name,
        agent_email=agent_email,
        commits=commits,
        commit_message=commit_message,
    )
    extra = extra.strip("\n")
    values["extra"] = extra
    values["requirements"] = extra or "Do what the task above describes; keep the change focused on it."
    text = substitute(template, values)
    if extra and "{extra}" not in template and "{requirements}" not in template:
        text = text.rstrip("\n") + "\n\n" + extra + "\n"
    return text


def render_resolve_prompt(
    template: str,
    *,
    task: Task,
    worktree: Path | str,
    branch: str,
    files: Sequence[tuple[str, str | None, str | None, str | None]],
    base_branch: str = "main",
    agent_name: str = "",
    agent_email: str = "",
    commits: bool = True,
) -> str:
    """The prompt for an agent resolving a conflict. `files` holds (path, base, ours, theirs) texts, where
    ours is the base branch (main) and theirs the task branch; None means the file is absent there."""
    values = task_values(
        task, worktree=worktree, branch=branch, agent_name=agent_name, agent_email=agent_email, commits=commits
    )
    values["base_branch"] = base_branch
    values["conflict_paths"] = "\n".join(f"- {path}" for path, *_ in files) or "- (none listed)"
    values["conflict_files"] = "\n".join(
        _file_versions(path, base, ours, theirs, base_branch) for path, base, ours, theirs in files
    )
    return substitute(template, values)


def _file_versions(path: str, base: str | None, ours: str | None, theirs: str | None, base_branch: str) -> str:
    parts = [f"### {path}\n"]
    for label, text in (
        ("Common ancestor (base) version", base),
        (f"{base_branch} version (ours)", ours),
        ("Task branch version (theirs)", theirs),
    ):
        parts.append(f"{label}:")
        parts.append(_fenced(text) if text is not None else "(the file does not exist in this version)")
        parts.append("")
    return "\n".join(parts)


def _fenced(text: str) -> str:
    """A code fence longer than any backtick run inside, so file contents cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}\n{body}{fence}"
