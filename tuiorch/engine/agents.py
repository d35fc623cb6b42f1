"""What a run's agents are told (preset, templates, argv), whether they are confined, and where they
run (the runner): decided once, when the run is made."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tuiorch.agent_command import AgentBrief
from tuiorch.config import CONFIG_FILE, Config, Preset, agent_argv, agent_preset, worktree_dir
from tuiorch.confine.attempts import Confiner
from tuiorch.confine.sandbox import confined_preset, decide
from tuiorch.git import GitRepo
from tuiorch.prompt import RESOLVE_TEMPLATE, load_template
from tuiorch.runners.base import Runner
from tuiorch.runners.factory import make_runner


@dataclass(frozen=True)
class AgentSetup:
    preset: Preset
    #: Agents run in a bubblewrap sandbox that lets them change only their worktree and branch.
    confiner: Confiner
    #: Why agents run unconfined although confinement was asked for ("" if not; told once the run starts).
    confine_warning: str
    brief: AgentBrief
    runner: Runner


def set_up_agents(
    config: Config, root: Path, git: GitRepo, state_dir: Path, agent_runner: Runner | None = None
) -> AgentSetup:
    """The run's agents: `agent_runner` when given (tests), else the runner `[runner] kind` asks for."""
    preset = agent_preset(config)
    # Agents on Ray nodes are confined (or not) by their node, which probes bubblewrap itself.
    local = config.runner.kind == "local"
    confine = config.agent.confine if local else "off"
    confinement = decide(confine, config.agent.preset, config.agent.writable, root / CONFIG_FILE)
    confiner = Confiner(confinement.sandbox)
    argv_template = agent_argv(config)
    sandboxed = confiner.on or (not local and config.agent.confine != "off")
    if sandboxed and config.agent.preset != "custom":
        preset = confined_preset(preset)
        argv_template = list(preset.argv)
    template = load_template(config.prompt_template, root=root)
    resolve_template = (
        load_template(config.resolve_template, root=root) if config.resolve_template else RESOLVE_TEMPLATE
    )
    brief = AgentBrief(config, preset, template, resolve_template, argv_template)
    runner = agent_runner or make_runner(
        config,
        git,
        root,
        worktrees=functools.partial(worktree_dir, config, root),
        prompts=state_dir / "prompts",
        scratch=preset.scratch,
        programs=argv_template[:1],
        confiner=confiner,
    )
    return AgentSetup(preset, confiner, confinement.warning, brief, runner)
