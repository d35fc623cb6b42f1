"""The runner seam: the one way the engine starts an agent.

The engine calls `Runner.start(spec, hooks)` and gets an `AgentHandle`; nothing else starts an agent,
a resolver agent or a slot's setup command. What the handle runs may be a local process
(`LocalRunner`), a local process in a sandbox, or a process on another machine: the pool loop
cannot tell, and never touches a workspace except through the handle.

The life of one agent run, as the engine drives it:

1. ``handle = await runner.start(spec, hooks)``: the workspace is ready (a fresh or warm slot
   checkout of ``spec.branch``; ``[slots] setup`` has run once in a fresh one; for a resolver the base
   is merged in, markers and all) and the command is rendered for it. Nothing runs yet, so the
   engine can mark the task running and show where it runs before the first line arrives.
2. ``exit = await handle.wait()``: the agent runs; its output streams through `AgentHooks` until it
   ends, times out or is cancelled (``handle.cancel()`` from any callback or command).
3. ``collected = await handle.collect(message, failed=...)``: what the agent left uncommitted is
   committed, and the result commits are in the central repository's task branch.
4. ``await handle.release()``: the workspace goes back to its slot, or is removed.

Every method runs in the engine's event loop; the hooks are called there too. A runner is free to do
its work in threads, processes or on other machines.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from tuiorch.agent import AgentExit

__all__ = [
    "AgentCommand",
    "AgentExit",
    "AgentHandle",
    "AgentHooks",
    "AgentSpec",
    "Attachment",
    "Collected",
    "Runner",
    "StartFailed",
    "Workspace",
    "render_command",
]

#: What the agent is asked to do: a task's work, or resolving its conflict with the base.
AgentKind = Literal["task", "resolve"]


class StartFailed(Exception):
    """The agent could not be started, for a reason the user should read (`reason`).

    Raised by `Runner.start` after the runner has dealt with the workspace itself: a failed
    ``[slots] setup`` removes it (so the next task sets it up again), a refused command releases it.
    Raised by an `AgentSpec.command` callable to refuse a command (e.g. an argument longer than the
    system takes); the runner then releases the workspace and lets it through.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Workspace:
    """What the command is rendered for: the prepared workspace, as the agent will see it.

    Paths are on the machine (and inside the sandbox) where the agent runs.
    """

    #: The checkout the agent works in (its cwd; ``{worktree}`` in the argv template).
    path: str
    #: Where the runner puts `AgentCommand.prompt` before the agent starts (``{prompt_file}``).
    prompt_file: str
    #: kind "resolve": the paths the merge of the base left in conflict. Empty for a task; empty for a
    #: resolver means nothing conflicts any more (the base moved on): no agent is needed.
    conflicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentCommand:
    """The agent's command line, rendered in tuiorch's process for one `Workspace`. Never a shell."""

    argv: tuple[str, ...]
    #: The prompt; the runner writes it to `Workspace.prompt_file` before the agent starts.
    prompt: str
    #: The prompt file is the agent's stdin (else stdin is empty).
    prompt_on_stdin: bool = False
    #: Added over `AgentSpec.env` for the agent only (not for setup).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentSpec:
    """Everything a runner needs to run one agent for one task; built by the engine per attempt."""

    task_id: str
    kind: AgentKind
    #: 1-based attempt number of the task (a resolver run carries its resolve attempt).
    attempt: int
    #: Pool slot (0-based). A runner may map it to a warm workspace it keeps between tasks.
    slot: int
    #: The task branch: the agent commits here and only here; results come back to it.
    branch: str
    #: The base branch's name (e.g. "main"); a fresh branch starts at its tip.
    base: str
    #: The branch's earlier commits are kept (a retry or a resolver builds on them); else the branch is
    #: reset to the base's tip.
    keep_commits: bool
    #: Renders the command once the workspace exists; may raise `StartFailed` to refuse it. It may
    #: return an awaitable (a resolver's prompt reads the conflicted files' texts from git): runners
    #: call it through `render_command`.
    command: Callable[[Workspace], AgentCommand | Awaitable[AgentCommand]]
    #: Where the agent's output goes, whole (stderr lines marked); on tuiorch's machine.
    log_path: Path
    #: Environment for the agent and for setup (the preset's variables, TUIORCH_TASK, ...).
    env: Mapping[str, str] = field(default_factory=dict)
    #: ``[slots] setup`` argv, run once in a freshly made workspace before the agent; None for none.
    setup: tuple[str, ...] | None = None
    #: Seconds before the agent is killed and its exit marked `timed_out`; None for no limit.
    timeout: float | None = None
    #: Seconds without output or file changes before `AgentHooks.on_stuck`; None to never judge.
    stuck_after: float | None = None
    #: kind "resolve": the message of the merge commit of the base into the branch.
    merge_message: str = ""


async def render_command(spec: AgentSpec, workspace: Workspace) -> AgentCommand:
    """`spec.command` for `workspace`, awaited if it returns an awaitable."""
    command = spec.command(workspace)
    if inspect.isawaitable(command):
        return await command
    return command


@dataclass(frozen=True)
class Attachment:
    """What the run state saves about a running agent, so a restarted tuiorch can find it again.

    Plain data (`to_state` / `from_state` round-trip through JSON). `where` and `confined` are what the
    task pane and ``tuiorch status`` show about the agent.
    """

    #: The runner's kind ("local", "ray", ...): only a runner of that kind can re-attach.
    runner: str = "local"
    #: "local", or the name of the node the agent runs on.
    where: str = "local"
    #: The agent runs in a sandbox that lets it change only its workspace and its branch.
    confined: bool = False
    #: The workspace's path on `where`.
    workspace: str = ""
    #: Process group of the agent on `where` (its whole process tree), once it exists.
    pgid: int | None = None
    #: A runner's own name for the run (e.g. a detached actor's name); "" when it has none.
    ref: str = ""

    def to_state(self) -> dict[str, object]:
        return {
            "runner": self.runner,
            "where": self.where,
            "confined": self.confined,
            "workspace": self.workspace,
            "pgid": self.pgid,
            "ref": self.ref,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, object]) -> Attachment:
        """Read back `to_state`'s dict, or a task's saved state from before attachments were saved
        (its "pgid" and "worktree")."""
        pgid = data.get("pgid")
        return cls(
            runner=str(data.get("runner") or "local"),
            where=str(data.get("where") or "local"),
            confined=bool(data.get("confined", False)),
            workspace=str(data.get("workspace") or data.get("worktree") or ""),
            pgid=int(pgid) if isinstance(pgid, int | str) and str(pgid).isdigit() else None,
            ref=str(data.get("ref") or ""),
        )


@dataclass(frozen=True)
class Collected:
    """What an agent run left, once it is in the central repository."""

    #: The task branch's tip after collecting (None when the branch is gone).
    tip: str | None
    #: The branch holds commits its base commit (`AgentHandle.base_sha`) does not.
    has_new_commits: bool
    #: kind "resolve": conflicted paths whose file in the workspace still holds conflict markers.
    markers: tuple[str, ...] = ()


def _ignore_lines(lines: list[str]) -> None:
    return None


def _ignore_idle(idle: float) -> None:
    return None


def _ignore() -> None:
    return None


def _ignore_attachment(attachment: Attachment) -> None:
    return None


def _ignore_text(text: str) -> None:
    return None


@dataclass
class AgentHooks:
    """How a running agent reaches the engine. Called in the event loop's thread, never concurrently.

    A hook that raises ends the agent (its whole process tree) and the exception comes out of `wait`.
    """

    #: Each burst of stdout lines, in order (a flooding agent gives thousands at once).
    on_lines: Callable[[list[str]], None] = _ignore_lines
    #: Each burst of stderr lines (kept apart: CLIs print warnings there).
    on_stderr: Callable[[list[str]], None] = _ignore_lines
    #: No output and no file change in the workspace for `AgentSpec.stuck_after` seconds (idle seconds).
    on_stuck: Callable[[float], None] = _ignore_idle
    #: A stuck agent shows life again: output, or a file changed in its workspace.
    on_unstuck: Callable[[], None] = _ignore
    #: Where the workspace will be, told before it is prepared: a crash while it is being prepared
    #: must still find it (its branch is checked out there). `pgid` is None yet.
    on_placed: Callable[[Attachment], None] = _ignore_attachment
    #: The agent exists (it has a process group or a remote run): save this for crash-resume.
    on_started: Callable[[Attachment], None] = _ignore_attachment
    #: Something the user should be told that is not the agent's output (e.g. uncommitted work found
    #: in a reused workspace was saved under a ref).
    on_notice: Callable[[str], None] = _ignore_text
    #: Something the user should be warned of (e.g. what a confined agent tried and was refused).
    on_warning: Callable[[str], None] = _ignore_text


class AgentHandle(Protocol):
    """One agent run in a prepared workspace. Made by `Runner.start` or `Runner.reattach`."""

    #: The workspace's path where the agent runs (on its node); the task's worktree in events.
    workspace: str
    #: The commit the branch was at when the workspace was prepared: results must descend from it.
    #: kind "resolve": the base commit merged in, which the resolution must contain.
    base_sha: str
    #: "local" or the node's name.
    where: str
    #: Whether the agent runs confined to its workspace and branch.
    confined: bool
    #: kind "resolve": paths in conflict after the base was merged in (see `Workspace.conflicted`).
    conflicted: tuple[str, ...]

    async def wait(self) -> AgentExit:
        """Run the agent to its end, streaming output through the hooks; once per handle.

        Ends with the agent: its exit code, or `timed_out` after `AgentSpec.timeout`, or `cancelled`
        after `cancel`. A start failure (command not found) is an exit with `error` set, its message
        also in the log and the output. Cancelling the awaiting task kills the whole process tree
        before the CancelledError goes on. Nothing of the agent outlives `wait`.
        """
        ...

    def cancel(self) -> None:
        """Stop the agent and its whole process tree (on its node); `wait` then returns `cancelled`.

        Any time, from anywhere in the loop: before `wait` (the agent never starts), during, after
        (nothing happens). Returns at once; `wait` returns once the tree is gone.
        """
        ...

    async def collect(self, message: str, *, failed: bool) -> Collected:
        """Bring the run's result into the central repository's task branch.

        Commits what the agent left uncommitted in the workspace with `message` (the repository's
        hooks and identity apply), on the task branch only: an agent that switched branches has
        nothing committed for it. A runner whose workspace is not the central repository fetches
        the branch into ``refs/tuiorch/incoming/<task>``, checks that it descends from `base_sha`,
        and only then moves the task branch; a result that does not is refused (GitError).

        failed: the agent did not succeed; leftovers are committed as work in progress and a git
        failure is swallowed (the attempt has failed already), except UncommittedWork.
        kind "resolve": conflicted paths freed of markers are staged and the merge is committed if
        the agent left it uncommitted; `Collected.markers` names the files still marked.

        Raises UncommittedWork (a GitError) when work cannot be committed: the handle has then kept
        the workspace out of the pool (never reset or reused) and the exception names where it is.
        """
        ...

    async def release(self) -> None:
        """The agent is done with the workspace: a warm slot is detached for the next task, any other
        workspace is removed. Once; nothing happens after the first call or after UncommittedWork."""
        ...

    def attachment(self) -> Attachment:
        """What crash-resume needs to find this run again (also given to `AgentHooks.on_started`)."""
        ...


class Runner(Protocol):
    """Starts agents. One per run, made from the configuration (``[runner] kind``)."""

    #: The runner's kind as configured ("local", ...); saved in each `Attachment`.
    kind: str

    async def start(self, spec: AgentSpec, hooks: AgentHooks) -> AgentHandle:
        """Prepare the workspace for `spec` and render its command; the agent runs in `AgentHandle.wait`.

        The workspace: ``spec.branch`` checked out (reset to the base's tip unless `keep_commits`),
        with nothing of an earlier task's files (uncommitted work found there is saved under a
        ref, told through `on_notice`); ``spec.setup`` run once in a workspace made fresh (its
        failure is `StartFailed`, and the workspace is removed so the next task sets it up again).
        kind "resolve": the base is merged into the branch in the workspace, conflicts left as they
        are for the agent.

        Raises StartFailed (the workspace already released or removed), GitError when git cannot
        prepare the workspace, and CancelledError when cancelled (setup's processes killed).
        """
        ...

    async def reattach(self, saved: Attachment, spec: AgentSpec, hooks: AgentHooks) -> AgentHandle | None:
        """After tuiorch died: a handle on the saved run if its agent still runs, else None.

        The handle's `wait` streams output from where it had got (nothing lost that the agent wrote
        to its log) and the run goes on as if tuiorch had never stopped. A local process cannot
        be re-attached (its pipes died with tuiorch): None.
        """
        ...

    async def running(self, saved: Attachment) -> bool:
        """After tuiorch died: whether `reattach` can take up the saved run (its agent still runs on
        the cluster, or has ended there with its output and result kept). Asked before anything of the
        dead run is ended; a local runner says False (its agents die with tuiorch, or are ended)."""
        ...

    async def clean_up(self, saved: Attachment, *, leftovers_message: str | None = None) -> str | None:
        """End what is left of a saved run that will not be re-attached; a notice saying what, or None.

        Ends the agent's process tree, but only if it is still this run's (a saved process group id
        may belong to someone else by now). With `leftovers_message`, what the agent left
        uncommitted is committed with it on the task branch and the result brought back as in
        `AgentHandle.collect`; then the workspace is released. Without, the workspace stays as it is.
        """
        ...

    async def end_orphans(self, spare: Collection[str] = ()) -> list[str]:
        """End every agent an earlier tuiorch run on this repository left running, also those whose
        run state was never saved, except the runs named in `spare` (`Attachment.ref`s about to be
        re-attached); one line per agent ended. For the start of a run after a crash and
        ``tuiorch clean``."""
        ...

    async def close(self) -> None:
        """The run is over: remove the workspaces this runner made (unless ``[slots] keep_at_end``),
        except those kept for uncommitted work; end anything of its own still running."""
        ...
