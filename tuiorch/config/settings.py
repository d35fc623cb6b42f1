"""The settings of a run as dataclasses, with their defaults, and the names each setting may use."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MESSAGE = "{type}: {title}\n\nRefs: TASKS.md#task-{id}\nCo-Authored-By: {agent_name} <{agent_email}>"


@dataclass
class AgentConfig:
    preset: str = "claude"
    command: list[str] = field(default_factory=list)
    timeout: float = 3600.0  # seconds; 0 = no limit
    stuck_after: float = 600.0  # seconds; 0 = never flagged
    retries: int = 1
    #: How the agent's output is read (agent_output.PARSERS); "" = the preset's own.
    output: str = ""
    #: Agents in a sandbox that lets them change only their worktree and branch: "auto" (where
    #: bubblewrap works), "on" (refuse to run without it), "off".
    confine: str = "auto"
    #: Extra paths a confined agent may write (~ expanded), beyond its worktree and its CLI's own folders.
    writable: list[str] = field(default_factory=list)


@dataclass
class MergeConfig:
    auto: bool = True
    message: str = DEFAULT_MESSAGE
    check: str = ""
    on_check_fail: str = "ask"
    on_conflict: str = "ask"
    resolve_attempts: int = 2


@dataclass
class SlotsConfig:
    reuse: bool = True
    keep: list[str] = field(default_factory=lambda: [".venv", "node_modules"])
    setup: str = ""
    keep_at_end: bool = False


@dataclass
class RunnerConfig:
    #: Where agents run: "local" (this machine) or "ray" (the nodes of a Ray cluster).
    kind: str = "local"
    #: kind "ray": the cluster's address, "HOST:PORT" of its head (GCS).
    address: str = ""
    #: kind "ray": the Ray resources one agent takes; a node takes as many agents as its own allow.
    resources: dict[str, float] = field(default_factory=lambda: {"tuiorch_agent": 1.0})


@dataclass
class Config:
    base: str = "main"
    workers: int = 3
    tasks: str = "TASKS.md"
    worktrees: str = "../{repo}-worktrees"
    branch: str = "task-{id}"
    agent: AgentConfig = field(default_factory=AgentConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    slots: SlotsConfig = field(default_factory=SlotsConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    #: Path to the prompt template (relative to the repo root); "" = built-in.
    prompt_template: str = ""
    #: Path to the conflict-resolution prompt template; "" = built-in.
    resolve_template: str = ""
    #: Overrides of DEFAULT_KEYMAP only (action -> key); see resolved_keymap().
    keymap: dict[str, str] = field(default_factory=dict)


ARGV_PLACEHOLDERS = ("prompt", "prompt_file", "worktree")
PATH_PLACEHOLDERS = ("repo", "id")
MESSAGE_PLACEHOLDERS = ("type", "title", "id", "agent_name", "agent_email")
RESOLUTIONS = ("ask", "agent", "requeue")
RUNNER_KINDS = ("local", "ray")
CONFINE_MODES = ("auto", "on", "off")
