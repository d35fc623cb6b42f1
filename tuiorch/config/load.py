"""Read tuiorch.toml: every setting is checked as it is read, so a mistake is a ConfigError naming the file,
table and key rather than a setting silently ignored."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path, PurePosixPath
from typing import Any

from tuiorch.agent_output import PARSERS
from tuiorch.config.keymap import check_keymap_clashes, read_keymap
from tuiorch.config.presets import PRESETS
from tuiorch.config.settings import (
    ARGV_PLACEHOLDERS,
    CONFINE_MODES,
    MESSAGE_PLACEHOLDERS,
    PATH_PLACEHOLDERS,
    RESOLUTIONS,
    RUNNER_KINDS,
    AgentConfig,
    Config,
    MergeConfig,
    RunnerConfig,
    SlotsConfig,
)
from tuiorch.config.templating import check_placeholders, expand_path_template, placeholder_error
from tuiorch.config.values import CONFIG_FILE, ConfigError, parse_duration, show_value
from tuiorch.git.refs import valid_branch_name


class _Table:
    """Reads one TOML table, turning every mistake into a ConfigError for that table and key."""

    def __init__(self, path: str, name: str | None, data: Mapping[str, Any], known: Sequence[str]) -> None:
        self.path, self.name, self.data = path, name, data
        for key in data:
            if key not in known:
                kind = "table" if isinstance(data[key], dict) else "key"
                hint = get_close_matches(key, known, n=1)
                suggestion = f'; did you mean "{hint[0]}"?' if hint else f"; known: {', '.join(known)}"
                raise self.error(key, f"unknown {kind}{suggestion}")

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(self.path, self.name, key, message)

    def get(self, key: str, default: Any, check: Callable[[Any], Any], expected: str) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            detail = str(exc) or f"expected {expected}, got {show_value(value)}"
            raise self.error(key, detail) from None

    def string(self, key: str, default: str, *, nonempty: bool = False) -> str:
        def check(value: Any) -> str:
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {show_value(value)}")
            if nonempty and not value.strip():
                raise ValueError("must not be empty")
            return value

        return self.get(key, default, check, "a string")

    def boolean(self, key: str, default: bool) -> bool:
        def check(value: Any) -> bool:
            if not isinstance(value, bool):
                raise TypeError(f"expected true or false, got {show_value(value)}")
            return value

        return self.get(key, default, check, "true or false")

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        def check(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"expected a whole number, got {show_value(value)}")
            if value < minimum:
                raise ValueError(f"expected a whole number >= {minimum}, got {value}")
            return value

        return self.get(key, default, check, "a whole number")

    def duration(self, key: str, default: float) -> float:
        return self.get(key, default, parse_duration, 'a duration like "60m" or seconds')

    def string_list(self, key: str, default: list[str]) -> list[str]:
        def check(value: Any) -> list[str]:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise TypeError(f"expected a list of strings, got {show_value(value)}")
            return list(value)

        return self.get(key, list(default), check, "a list of strings")

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        def check(value: Any) -> str:
            if not isinstance(value, str) or value not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}, got {show_value(value)}")
            return value

        return self.get(key, default, check, "one of " + ", ".join(choices))

    def subtable(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(self.path, None, key, f"expected a table [{key}], got {show_value(value)}")
        return value


_TOP_KEYS = (
    "base",
    "workers",
    "tasks",
    "worktrees",
    "branch",
    "agent",
    "merge",
    "slots",
    "prompt",
    "keymap",
    "runner",
)
_AGENT_KEYS = ("preset", "command", "timeout", "stuck_after", "retries", "output", "confine", "writable")
_MERGE_KEYS = ("auto", "message", "check", "on_check_fail", "on_conflict", "resolve_attempts")
_SLOTS_KEYS = ("reuse", "keep", "setup", "keep_at_end")
_PROMPT_KEYS = ("template", "resolve_template")
_RUNNER_KEYS = ("kind", "address", "resources")


def config_from_dict(data: Mapping[str, Any], path: str = CONFIG_FILE, *, repo_name: str = "repo") -> Config:
    """Validate parsed TOML and build a Config. `repo_name` is used to check the rendered branch name."""
    defaults = Config()
    top = _Table(path, None, data, _TOP_KEYS)
    agent_table = _Table(path, "agent", top.subtable("agent"), _AGENT_KEYS)
    merge_table = _Table(path, "merge", top.subtable("merge"), _MERGE_KEYS)
    slots_table = _Table(path, "slots", top.subtable("slots"), _SLOTS_KEYS)
    prompt_table = _Table(path, "prompt", top.subtable("prompt"), _PROMPT_KEYS)
    runner_table = _Table(path, "runner", top.subtable("runner"), _RUNNER_KEYS)
    keymap_data = top.subtable("keymap")

    agent = AgentConfig(
        preset=agent_table.choice("preset", defaults.agent.preset, tuple(PRESETS)),
        command=agent_table.string_list("command", defaults.agent.command),
        timeout=agent_table.duration("timeout", defaults.agent.timeout),
        stuck_after=agent_table.duration("stuck_after", defaults.agent.stuck_after),
        retries=agent_table.integer("retries", defaults.agent.retries, minimum=0),
        output=agent_table.choice("output", defaults.agent.output, ("", *PARSERS)),
        confine=agent_table.choice("confine", defaults.agent.confine, CONFINE_MODES),
        writable=agent_table.string_list("writable", defaults.agent.writable),
    )
    merge = MergeConfig(
        auto=merge_table.boolean("auto", defaults.merge.auto),
        message=merge_table.string("message", defaults.merge.message, nonempty=True),
        check=merge_table.string("check", defaults.merge.check),
        on_check_fail=merge_table.choice("on_check_fail", defaults.merge.on_check_fail, RESOLUTIONS),
        on_conflict=merge_table.choice("on_conflict", defaults.merge.on_conflict, RESOLUTIONS),
        resolve_attempts=merge_table.integer("resolve_attempts", defaults.merge.resolve_attempts, minimum=0),
    )
    slots = SlotsConfig(
        reuse=slots_table.boolean("reuse", defaults.slots.reuse),
        keep=slots_table.string_list("keep", defaults.slots.keep),
        setup=slots_table.string("setup", defaults.slots.setup),
        keep_at_end=slots_table.boolean("keep_at_end", defaults.slots.keep_at_end),
    )
    config = Config(
        base=top.string("base", defaults.base, nonempty=True),
        workers=top.integer("workers", defaults.workers, minimum=1),
        tasks=top.string("tasks", defaults.tasks, nonempty=True),
        worktrees=top.string("worktrees", defaults.worktrees, nonempty=True),
        branch=top.string("branch", defaults.branch, nonempty=True),
        agent=agent,
        merge=merge,
        slots=slots,
        prompt_template=prompt_table.string("template", defaults.prompt_template),
        resolve_template=prompt_table.string("resolve_template", defaults.resolve_template),
        keymap=read_keymap(path, keymap_data),
        runner=_read_runner(runner_table, defaults.runner),
    )
    validate_config(config, path, repo_name=repo_name)
    return config


def _read_runner(table: _Table, defaults: RunnerConfig) -> RunnerConfig:
    def resources(value: Any) -> dict[str, float]:
        good = (
            isinstance(value, dict)
            and value
            and all(
                isinstance(amount, int | float) and not isinstance(amount, bool) and amount > 0
                for amount in value.values()
            )
        )
        if not good:
            raise ValueError
        return {str(name): float(amount) for name, amount in value.items()}

    runner = RunnerConfig(
        kind=table.choice("kind", defaults.kind, RUNNER_KINDS),
        address=table.string("address", defaults.address),
        resources=table.get(
            "resources",
            dict(defaults.resources),
            resources,
            "a table of positive amounts, e.g. {tuiorch_agent = 1}",
        ),
    )
    if runner.kind == "ray" and not runner.address:
        # Without an address Ray would start a cluster of its own, listening on every interface.
        raise table.error(
            "address", 'kind = "ray" needs the cluster\'s address, e.g. address = "10.0.0.5:6379"'
        )
    return runner


def validate_config(config: Config, path: str = CONFIG_FILE, *, repo_name: str = "repo") -> None:
    """Checks that span keys or need more than a type: placeholders, ref names, preset/command agreement."""
    _check_names(config, path, repo_name)
    _check_agent_command(config, path)
    if bad := check_placeholders(config.merge.message, MESSAGE_PLACEHOLDERS):
        raise ConfigError(path, "merge", "message", placeholder_error(bad, MESSAGE_PLACEHOLDERS))
    _check_commands(config, path)
    check_keymap_clashes(config, path)


def _check_names(config: Config, path: str, repo_name: str) -> None:
    """`base` is a branch name; `worktrees` and `branch` use known placeholders and give valid names."""
    if not is_valid_branch_name(config.base):
        raise ConfigError(path, None, "base", f"not a valid branch name: {show_value(config.base)}")
    for key in ("worktrees", "branch"):
        template = getattr(config, key)
        if bad := check_placeholders(template, PATH_PLACEHOLDERS):
            raise ConfigError(path, None, key, placeholder_error(bad, PATH_PLACEHOLDERS))
    if "{id}" not in config.branch:
        raise ConfigError(path, None, "branch", "must contain {id}, so each task gets its own branch")
    sample = expand_path_template(config.branch, repo=repo_name, id="1")
    if not is_valid_branch_name(sample) or sample == config.base:
        raise ConfigError(
            path,
            None,
            "branch",
            f"{show_value(config.branch)} gives {show_value(sample)}, not a valid branch name",
        )


def _check_agent_command(config: Config, path: str) -> None:
    """[agent] command is given exactly when the preset is custom, with known placeholders only."""
    agent = config.agent
    if agent.preset == "custom":
        if not agent.command or not agent.command[0].strip():
            raise ConfigError(
                path, "agent", "command", 'preset "custom" needs command = ["program", "arg", "{prompt}"]'
            )
    elif agent.command:
        raise ConfigError(path, "agent", "command", 'set preset = "custom" to use command')
    for argument in agent.command:
        if bad := check_placeholders(argument, ARGV_PLACEHOLDERS):
            raise ConfigError(path, "agent", "command", placeholder_error(bad, ARGV_PLACEHOLDERS))


def _check_commands(config: Config, path: str) -> None:
    """The check and setup commands split into argv; kept paths stay inside the worktree."""
    for table, key, command in (
        ("merge", "check", config.merge.check),
        ("slots", "setup", config.slots.setup),
    ):
        try:
            shlex.split(command)
        except ValueError as exc:
            # These run as argv without a shell, so they must split cleanly.
            raise ConfigError(path, table, key, f"cannot split into arguments: {exc}") from None
    for entry in config.slots.keep:
        pure = PurePosixPath(entry)
        if not entry.strip() or pure.is_absolute() or ".." in pure.parts:
            raise ConfigError(
                path, "slots", "keep", f"expected paths inside the worktree, got {show_value(entry)}"
            )


def is_valid_branch_name(name: str) -> bool:
    return valid_branch_name(name)


def load_config(root: Path) -> Config:
    """Read root/tuiorch.toml; defaults when it does not exist. Raises ConfigError for anything wrong."""
    path = Path(root) / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(CONFIG_FILE, None, None, f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, None, None, str(exc)) from None
    config = config_from_dict(data, CONFIG_FILE, repo_name=Path(root).resolve().name)
    for key, value in (("template", config.prompt_template), ("resolve_template", config.resolve_template)):
        if value and not (Path(root) / value).is_file():
            raise ConfigError(CONFIG_FILE, "prompt", key, f"file not found: {value}")
    return config
