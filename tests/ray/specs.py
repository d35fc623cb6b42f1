"""AgentSpecs for the demo agent, shared by the Ray tests and the driver they kill."""

from __future__ import annotations

import sys
from pathlib import Path

from tuiorch.prompt import BUILTIN_TEMPLATE, render_prompt
from tuiorch.runners.base import AgentCommand, AgentHooks, AgentSpec, Workspace
from tuiorch.tasks import Task


def demo_spec(central: Path, task_id: str, body: str, *, slot: int = 0, **extra) -> AgentSpec:  # noqa: ANN003
    task = Task(id=task_id, title=f"task {task_id}", description=body)
    branch = f"task-{task_id}"

    def command(workspace: Workspace) -> AgentCommand:
        prompt = render_prompt(
            BUILTIN_TEMPLATE,
            task=task,
            worktree=workspace.path,
            branch=branch,
            commit_message=f"feat: {task_id}",
        )
        return AgentCommand(
            argv=(sys.executable, "-m", "tuiorch.demo_agent", workspace.prompt_file), prompt=prompt
        )

    fields = {"attempt": 1, "keep_commits": False, "timeout": 60.0, "stuck_after": None, **extra}
    return AgentSpec(
        task_id=task_id,
        kind="task",
        slot=slot,
        branch=branch,
        base="main",
        command=command,
        log_path=central.parent / f"{central.name}-logs" / f"{task_id}.log",
        env={"TUIORCH_DEMO_DELAY": "0.01"},
        **fields,
    )


class Seen:
    """What the hooks were told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self.started: list = []

    def hooks(self) -> AgentHooks:
        return AgentHooks(
            on_lines=self.lines.extend, on_stderr=self.stderr.extend, on_started=self.started.append
        )
