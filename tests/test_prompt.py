"""Prompt templates: the built-in one follows the seed's Agent Prompt Template; rendering is literal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuiorch.prompt import (
    BUILTIN_TEMPLATE,
    RESOLVE_TEMPLATE,
    PromptError,
    load_template,
    render_prompt,
    render_resolve_prompt,
)
from tuiorch.tasks import Priority, Task

TASK = Task(
    id="3",
    title="Conflict modal",
    description="Show ours and theirs side by side.\nKeys: o, t, e.",
    depends=("1", "2"),
    priority=Priority.FEATURE,
    touches=("tuiorch/ui/screens/", "tuiorch/ui/app.tcss"),
    type="feat",
)


def render(task: Task = TASK, template: str = BUILTIN_TEMPLATE, **kw: str) -> str:
    kw.setdefault("agent_name", "Claude")
    kw.setdefault("agent_email", "noreply@anthropic.com")
    return render_prompt(template, task=task, worktree="/wt/slot-1", branch="task-3", **kw)


def test_builtin_prompt_tells_the_agent_everything_the_seed_template_does() -> None:
    text = render()
    assert "You are working in a git worktree at: /wt/slot-1\n" in text
    assert "on branch task-3." in text
    assert "## Your Task: Conflict modal (Task 3)\n" in text
    assert "The task:\nShow ours and theirs side by side.\nKeys: o, t, e.\n" in text
    assert "- Work ONLY in /wt/slot-1" in text
    assert "- Commit to your task-3 branch" in text
    assert "Do NOT merge to main" in text
    assert "Do NOT push" in text
    assert "feat: Conflict modal\n\n  Refs: TASKS.md#task-3\n  Co-Authored-By: Claude <noreply@anthropic.com>" in text
    assert "PROGRESS: 3/5 writing tests\nPROGRESS: 60%\n" in text
    assert "Depends on (already merged into your branch's base): 1, 2" in text
    assert "tuiorch/ui/screens/, tuiorch/ui/app.tcss" in text
    assert re.findall(r"\{[a-z_]+\}", text) == []  # no placeholder left behind


def test_an_agent_that_cannot_commit_is_not_asked_to_and_never_sees_the_task_file_named() -> None:
    text = render(commits=False)
    assert "4. Leave your changes uncommitted: tuiorch commits them for you" in text
    assert "Do NOT commit, merge or push: tuiorch commits your changes on task-3" in text
    assert "Commit your changes" not in text and "commit message format" not in text
    # aider adds every file a prompt names to its chat as editable: the task list must not be one of them.
    assert "TASKS.md" not in text
    assert re.findall(r"\{[a-z_]+\}", text) == []


def test_the_configured_commit_message_is_the_one_asked_for() -> None:
    text = render(commit_message="feat(ui): Conflict modal\n\nTask: 3")
    assert "  ```\n  feat(ui): Conflict modal\n\n  Task: 3\n  ```" in text


def test_a_resolver_that_cannot_commit_leaves_the_merge_to_tuiorch() -> None:
    files = [("README.md", "a\n", "b\n", "c\n")]
    text = render_resolve_prompt(
        RESOLVE_TEMPLATE, task=TASK, worktree="/wt/r", branch="task-3", files=files, commits=False
    )
    assert "tuiorch stages it and commits the merge" in text and "git commit --no-edit" not in text


def test_braces_and_placeholders_in_task_text_are_kept_verbatim() -> None:
    task = Task(id="9", title="Format {branch_name} {0}", description="Use {worktree_path} and {} and {{x}}.")
    text = render(task)
    assert "## Your Task: Format {branch_name} {0} (Task 9)" in text
    assert "Use {worktree_path} and {} and {{x}}." in text


def test_empty_agent_identity_drops_the_trailer() -> None:
    text = render(agent_name="", agent_email="")
    assert "Co-Authored-By" not in text
    assert "Refs: TASKS.md#task-3" in text


def test_extra_fills_requirements_or_is_appended() -> None:
    assert "## Requirements:\nThe last attempt failed: tests did not pass.\n" in render(
        extra="The last attempt failed: tests did not pass."
    )
    custom = "Do {task_title} in {worktree_path}."
    assert render(template=custom, extra="Be brief.") == "Do Conflict modal in /wt/slot-1.\n\nBe brief.\n"
    assert render(template=custom) == "Do Conflict modal in /wt/slot-1."


def test_unknown_placeholders_in_custom_templates_stay_as_written() -> None:
    assert render(template="{task_id} {nope} {\"json\": 1}") == '3 {nope} {"json": 1}'


def test_load_template(tmp_path: Path) -> None:
    assert load_template("") == BUILTIN_TEMPLATE
    assert load_template(None) == BUILTIN_TEMPLATE
    (tmp_path / "prompt.md").write_text("Task {task_id}\n")
    assert load_template("prompt.md", root=tmp_path) == "Task {task_id}\n"
    assert load_template(tmp_path / "prompt.md") == "Task {task_id}\n"


def test_load_template_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"prompt template not found: .*missing\.md"):
        load_template("missing.md", root=tmp_path)
    (tmp_path / "empty.md").write_text("  \n")
    with pytest.raises(PromptError, match="prompt template is empty"):
        load_template(tmp_path / "empty.md")
    (tmp_path / "bin.md").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PromptError, match="not UTF-8"):
        load_template(tmp_path / "bin.md")
    with pytest.raises(PromptError, match="is a directory"):
        load_template(tmp_path)


def test_resolve_prompt_names_paths_and_holds_all_versions() -> None:
    files = [
        ("README.md", "# calc\n", "# calc\n## Usage\n", "# calc\n## Install\n```sh\npip install .\n```\n"),
        ("new.txt", None, "main side\n", "task side\n"),
    ]
    text = render_resolve_prompt(RESOLVE_TEMPLATE, task=TASK, worktree="/wt/slot-1", branch="task-3", files=files)
    assert "You are resolving a merge conflict in a git worktree at: /wt/slot-1" in text
    assert "branch task-3" in text
    assert "## Conflicting paths\n- README.md\n- new.txt\n" in text
    assert "git commit --no-edit" in text and "git add" in text
    assert "conflict marker" in text and "PROGRESS:" in text
    # A version holding a ``` fence is wrapped in a longer fence so it cannot end early.
    assert "````\n# calc\n## Install\n```sh\npip install .\n```\n````" in text
    assert "main version (ours):\n```\n# calc\n## Usage\n```" in text
    assert "### new.txt\n\nCommon ancestor (base) version:\n(the file does not exist in this version)" in text
