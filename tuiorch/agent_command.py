"""What an agent is told: its prompt, its command line and its environment, for a task attempt or a
resolver run. Rendered in tuiorch's process for the workspace a runner prepared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from tuiorch.config import (
    Config,
    Preset,
    prompt_on_stdin,
    render_argv,
    render_commit_message,
    too_long_argument,
)
from tuiorch.model.record import TaskRecord
from tuiorch.prompt import render_prompt, render_resolve_prompt
from tuiorch.runners.base import AgentCommand, StartFailed, Workspace
from tuiorch.tasks import Task

#: (path, ancestor, ours, theirs) texts of one conflicted file; None where the file is absent.
ConflictSides = tuple[str, str | None, str | None, str | None]


class AgentBrief:
    """Renders the commands of one run's agents from the configuration and the task's record."""

    def __init__(
        self, config: Config, preset: Preset, template: str, resolve_template: str, argv: Sequence[str]
    ) -> None:
        self.config = config
        #: The agent's argv template ({prompt}, {prompt_file}, {worktree} filled in per run).
        self.argv = list(argv)
        self.preset = preset
        self.template = template
        self.resolve_template = resolve_template

    def env(self, rec: TaskRecord) -> dict[str, str]:
        """The agent's environment over tuiorch's own: what the CLI needs to run unattended in a new
        folder (e.g. gemini's workspace trust), and which task it works on."""
        return {**dict(self.preset.env), "TUIORCH_TASK": rec.task.id, "TUIORCH_BRANCH": rec.branch or ""}

    def commit_message(self, task: Task) -> str:
        return render_commit_message(
            self.config.merge.message,
            type=task.type,
            title=task.title,
            id=task.id,
            agent_name=self.preset.agent_name,
            agent_email=self.preset.agent_email,
        )

    def task_command(self, rec: TaskRecord) -> Callable[[Workspace], AgentCommand]:
        """The command of a task attempt, for the workspace it gets."""

        def render(workspace: Workspace) -> AgentCommand:
            assert rec.branch is not None
            prompt = render_prompt(
                self.template,
                task=rec.task,
                worktree=workspace.path,
                branch=rec.branch,
                agent_name=self.preset.agent_name,
                agent_email=self.preset.agent_email,
                extra=self.retry_note(rec),
                commits=self.preset.commits,
                commit_message=self.commit_message(rec.task),
            )
            return self._command(prompt, workspace)

        return render

    def resolve_command(
        self, rec: TaskRecord, sides: Callable[[Sequence[str]], Awaitable[list[ConflictSides]]]
    ) -> Callable[[Workspace], Awaitable[AgentCommand]]:
        """The command of a resolver run; `sides` reads the texts of the conflicted files."""

        async def render(workspace: Workspace) -> AgentCommand:
            assert rec.branch is not None
            prompt = render_resolve_prompt(
                self.resolve_template,
                task=rec.task,
                worktree=workspace.path,
                branch=rec.branch,
                files=await sides(workspace.conflicted),
                base_branch=self.config.base,
                agent_name=self.preset.agent_name,
                agent_email=self.preset.agent_email,
                commits=self.preset.commits,
            )
            return self._command(prompt, workspace)

        return render

    def _command(self, prompt: str, workspace: Workspace) -> AgentCommand:
        argv = render_argv(self.argv, prompt=prompt, prompt_file=workspace.prompt_file, worktree=workspace.path)
        if too_long := too_long_argument(argv):
            raise StartFailed(too_long)
        return AgentCommand(argv=tuple(argv), prompt=prompt, prompt_on_stdin=prompt_on_stdin(self.config))

    def retry_note(self, rec: TaskRecord) -> str:
        """What the prompt adds for an attempt that builds on earlier work, or after a failure."""
        if rec.review_note and rec.keep_commits:
            return (
                "Your branch already holds your earlier work for this task. It was reviewed and sent back "
                f"to you with this note:\n```\n{rec.review_note}\n```\nMake the changes it asks for and commit.\n"
            )
        if rec.check_output and rec.keep_commits:
            return (
                f"Your branch already holds your earlier work, but merged with {self.config.base} it fails the "
                f"check `{self.config.merge.check}`. Fix that and commit. The check's last output:\n"
                f"```\n{rec.check_output}\n```\n"
            )
        if rec.continued and rec.attempts <= 1:
            return (
                f"An earlier attempt at this task was stopped ({rec.continued}). Your branch "
                f"{rec.branch} already holds what it committed (and any edits it left, committed as "
                "\"wip\"): look at them (git log, git diff) and continue from there rather than start over.\n"
            )
        if rec.attempts <= 1 or not rec.tail:
            return ""
        last = "\n".join(list(rec.tail)[-20:])
        why = rec.last_failure or "no reason given"
        return f"A previous attempt failed ({why}). Its last output lines:\n```\n{last}\n```\n"
