"""Write tuiorch.toml: a Config as TOML, and the commented file that `tuiorch init` writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomli_w

from tuiorch.agent_output import PARSERS
from tuiorch.config.keymap import DEFAULT_KEYMAP
from tuiorch.config.presets import PRESETS
from tuiorch.config.settings import DEFAULT_MESSAGE, Config, RunnerConfig
from tuiorch.config.values import CONFIG_FILE, ConfigError, format_duration


def config_to_dict(config: Config) -> dict[str, Any]:
    """A TOML-ready dict that config_from_dict reads back to an equal Config."""
    agent: dict[str, Any] = dataclasses.asdict(config.agent)
    agent["timeout"] = format_duration(config.agent.timeout)
    agent["stuck_after"] = format_duration(config.agent.stuck_after)
    data: dict[str, Any] = {
        "base": config.base,
        "workers": config.workers,
        "tasks": config.tasks,
        "worktrees": config.worktrees,
        "branch": config.branch,
        "agent": agent,
        "merge": dataclasses.asdict(config.merge),
        "slots": dataclasses.asdict(config.slots),
        "prompt": {"template": config.prompt_template, "resolve_template": config.resolve_template},
    }
    if config.keymap:
        data["keymap"] = dict(config.keymap)
    if config.runner != RunnerConfig():
        data["runner"] = dataclasses.asdict(config.runner)
    return data


def write_config(path: Path, config: Config) -> None:
    """Write `config` as TOML (tomli-w: no comments; default_config_toml carries those)."""
    Path(path).write_text(tomli_w.dumps(config_to_dict(config)), encoding="utf-8")


def default_config_toml(preset: str = "claude", base: str = "main") -> str:
    """The commented tuiorch.toml that `tuiorch init` writes; it loads back to Config() with this preset
    (and `base`, the branch finished work merges into)."""
    if preset not in PRESETS:
        raise ConfigError(
            CONFIG_FILE, "agent", "preset", f"expected one of {', '.join(PRESETS)}, got {preset!r}"
        )
    command = '["my-agent", "--task-file", "{prompt_file}"]' if preset == "custom" else "[]"
    message = tomli_w.dumps({"message": DEFAULT_MESSAGE}).strip()
    return f"""\
# tuiorch settings. Durations: "90s", "10m", "1h30m" or seconds; 0 turns a limit off.

{tomli_w.dumps({"base": base}).strip().ljust(37)} # the branch finished work merges into
workers = 3                           # pool size, changeable live
tasks = "TASKS.md"                    # task file: TASKS.md or tasks.toml
worktrees = "../{{repo}}-worktrees"     # where task worktrees are made ({{repo}}, {{id}})
branch = "task-{{id}}"                  # branch per task ({{repo}}, {{id}})

[agent]
{f'preset = "{preset}"'.ljust(37)} # {" | ".join(PRESETS)}
{f"command = {command}".ljust(37)} # argv for custom; "{{prompt}}", "{{prompt_file}}", "{{worktree}}" substituted
timeout = "60m"                       # hard limit per attempt
stuck_after = "10m"                   # no output and no file change for this long: flagged stuck
retries = 1                           # extra attempts after a failure
output = ""                           # how its output is read: "" (the preset's) | {" | ".join(PARSERS)}
confine = "auto"                      # sandbox: only its worktree and branch writable (auto | on | off)
writable = []                         # more paths a confined agent may write, e.g. ["~/.npm"]

[merge]
auto = true                           # false: ask before each merge
# {{type}}, {{title}}, {{id}}, {{agent_name}}, {{agent_email}}; a trailer whose values are empty is left out
{message}
check = ""                            # e.g. "pytest -q": run on the merge result before main moves
on_check_fail = "ask"                 # ask | agent | requeue
on_conflict = "ask"                   # ask | agent | requeue   (headless treats ask as leave-in-conflict)
resolve_attempts = 2                  # agent attempts at a conflict before it goes to a human

[slots]
reuse = true                          # each slot keeps a worktree and moves it to the next task's branch
keep = [".venv", "node_modules"]      # untracked paths kept between tasks in a slot; all else is cleaned
setup = ""                            # run once when a slot worktree is first made (argv split, no shell)
keep_at_end = false                   # keep the slot worktrees when the run ends

[prompt]
template = ""                         # path to a prompt template; empty: the built-in one
resolve_template = ""                 # path to the conflict-resolution prompt; empty: the built-in one

[runner]
kind = "local"                        # local | ray: agents on a Ray cluster's nodes (pip install 'tuiorch[ray]')
# address = "10.0.0.5:6379"           # kind = "ray": the cluster's head; the merge stays on this machine
# resources = {{ tuiorch_agent = 1 }}   # Ray resources per agent; a node takes as many agents as it has

[keymap]
# Rebind keys by action name, e.g.  quit = "ctrl+q"
# Actions: {", ".join(DEFAULT_KEYMAP)}
"""
