"""Load, validate, default and write tuiorch.toml; agent presets and argv/message rendering.

Every setting is validated when the file is read: an unknown key or a wrong type is a ConfigError naming
the file, table and key, because a setting that is silently ignored is worse than one that fails loudly.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
import shutil
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path, PurePosixPath
from typing import Any

import pygit2
import tomli_w

from tuiorch.agent_output import PARSERS

CONFIG_FILE = "tuiorch.toml"


class ConfigError(Exception):
    """Bad configuration. str() is the user-facing message: 'tuiorch.toml: [agent] timeout: expected ...'."""

    def __init__(self, path: str | Path, table: str | None, key: str | None, message: str) -> None:
        self.path = str(path)
        self.table = table
        self.key = key
        self.message = message
        where = self.path
        if table:
            where += f": [{table}]"
        if key:
            where += f" {key}" if table else f": {key}"
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------------------------------------
# Presets


@dataclass(frozen=True)
class Preset:
    name: str
    #: argv template; "{prompt}", "{prompt_file}" and "{worktree}" are substituted within each argument.
    argv: tuple[str, ...]
    agent_name: str
    agent_email: str
    #: Output format name for agent_output.make_output_parser.
    output: str
    #: Executables that must be on PATH.
    needs: tuple[str, ...] = ()
    #: One line for the README's preset table.
    summary: str = ""
    #: The CLI reads the prompt on stdin (the prompt file is its stdin): no argv size limit.
    stdin: bool = False
    #: The agent can commit in its worktree. False: its own sandbox keeps `.git` read-only or it never
    #: commits, so the prompt does not ask it to and tuiorch commits what it leaves with the task's message.
    commits: bool = True
    #: Environment the CLI needs to run unattended in a folder it has never seen.
    env: tuple[tuple[str, str], ...] = ()
    #: Paths (gitignore patterns) the CLI writes for itself in the worktree: never committed as work.
    scratch: tuple[str, ...] = ()
    #: What an exit code means, where the CLI gives it a meaning of its own.
    exit_codes: tuple[tuple[int, str], ...] = ()
    #: The CLI's exit code is an HTTP status & 0xFF when its model API failed.
    http_exit_codes: bool = False
    #: What the user must provide, and what tuiorch sets for the CLI (the README's per-preset notes).
    needs_text: str = ""
    sets_text: str = ""


#: Gemini CLI's own exit codes (its FatalError classes).
_GEMINI_EXITS = (
    (41, "authentication failed (Gemini CLI exit 41: check GEMINI_API_KEY or its auth settings)"),
    (42, "bad input (Gemini CLI exit 42)"),
    (44, "its sandbox failed to start (Gemini CLI exit 44)"),
    (52, "bad configuration (Gemini CLI exit 52: check ~/.gemini/settings.json)"),
    (53, "reached its turn limit (Gemini CLI exit 53)"),
    (55, "folder not trusted (Gemini CLI exit 55)"),
)

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="claude",
            argv=(
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
                "Bash,Read,Edit,Write",
                "--max-turns",
                "50",
            ),
            agent_name="Claude",
            agent_email="noreply@anthropic.com",
            output="claude-stream",
            needs=("claude",),
            summary="Claude Code (`claude -p`), edits accepted, tools Bash/Read/Edit/Write, at most 50 turns",
            stdin=True,
            needs_text="`claude` on PATH, logged in (`claude` once) or `ANTHROPIC_API_KEY`",
            sets_text="prompt on stdin; edits accepted and Bash/Read/Edit/Write allowed (so it can commit); 50 turns",
        ),
        Preset(
            name="codex",
            argv=("codex", "exec", "--json", "--sandbox", "workspace-write", "-"),
            agent_name="Codex",
            agent_email="noreply@openai.com",
            output="codex-json",
            needs=("codex",),
            summary="OpenAI Codex CLI (`codex exec`), its sandbox limits writes to the worktree; tuiorch commits",
            stdin=True,
            commits=False,
            needs_text="`codex` on PATH, `codex login` or an API key; its `workspace-write` sandbox "
            "(Landlock/seccomp) must work on the machine",
            sets_text="prompt on stdin (`-`); `--sandbox workspace-write`, which keeps `.git` read-only, so the "
            "prompt does not ask for a commit and tuiorch commits the work with the task's message",
        ),
        Preset(
            name="aider",
            argv=(
                "aider",
                "--message-file",
                "{prompt_file}",
                "--yes-always",
                "--no-stream",
                "--no-pretty",
                "--no-auto-commits",
                "--no-gitignore",
                "--no-detect-urls",
            ),
            agent_name="aider",
            agent_email="noreply@aider.chat",
            output="aider-text",
            needs=("aider",),
            summary="Aider (`aider --message-file`), plain text output; tuiorch commits its edits",
            commits=False,
            scratch=(".aider*",),
            needs_text="`aider` on PATH (`pip install aider-chat`), a model and its key (`~/.aider.conf.yml` or "
            "environment)",
            sets_text="prompt in a file (`--message-file`); no auto-commits (tuiorch commits with the task's "
            "message); `.gitignore` left alone and its `.aider*` files never committed; a failed model call "
            "fails the task although aider exits 0",
        ),
        Preset(
            name="gemini",
            argv=("gemini", "--output-format", "stream-json", "--approval-mode", "yolo"),
            agent_name="Gemini",
            agent_email="noreply@google.com",
            output="gemini-stream",
            needs=("gemini",),
            summary="Google Gemini CLI (`gemini`, headless), every tool call approved",
            stdin=True,
            env=(("GEMINI_CLI_TRUST_WORKSPACE", "true"),),
            exit_codes=_GEMINI_EXITS,
            http_exit_codes=True,
            needs_text="`gemini` on PATH, `GEMINI_API_KEY` (or its login) and `security.auth.selectedType` in "
            "`~/.gemini/settings.json`",
            sets_text="prompt on stdin (headless mode); `GEMINI_CLI_TRUST_WORKSPACE=true`, since every task "
            "worktree is a folder it has never trusted; exit codes explained (an API failure exits with the "
            "HTTP status & 0xFF)",
        ),
        Preset(
            name="opencode",
            argv=("opencode", "run", "--format", "json", "--dir", "{worktree}"),
            agent_name="opencode",
            agent_email="",
            output="opencode-json",
            needs=("opencode",),
            summary="opencode (`opencode run`), permissions from its own config",
            stdin=True,
            needs_text="`opencode` on PATH, a provider and model (`opencode auth login`, `opencode.json`); "
            "permissions from its own config",
            sets_text="prompt on stdin; `--dir` and `PWD` set to the task worktree (it takes its project folder "
            "from `PWD`, not from its working directory)",
        ),
        Preset(
            name="demo",
            argv=(sys.executable, "-m", "tuiorch.demo_agent", "{prompt_file}"),
            agent_name="tuiorch demo agent",
            agent_email="demo@tuiorch.invalid",
            output="text",
            summary="built-in demo agent: no LLM, follows `write` blocks in the task body",
            needs_text="nothing",
            sets_text="follows `write`/`append` blocks in the task body and commits",
        ),
        Preset(
            name="custom",
            argv=(),
            agent_name="",
            agent_email="",
            output="text",
            summary="any command: set [agent] command",
            needs_text="your program",
            sets_text="the prompt on stdin when the command names neither `{prompt}` nor `{prompt_file}`",
        ),
    )
}

#: Linux refuses one argv string longer than this (MAX_ARG_STRLEN, 32 pages).
MAX_ARGUMENT_BYTES = 128 * 1024 - 1

ARGV_PLACEHOLDERS = ("prompt", "prompt_file", "worktree")
PATH_PLACEHOLDERS = ("repo", "id")
MESSAGE_PLACEHOLDERS = ("type", "title", "id", "agent_name", "agent_email")
RESOLUTIONS = ("ask", "agent", "requeue")

# A placeholder is "{name}" with an identifier inside; other braces (JSON, shell) are left alone.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# ---------------------------------------------------------------------------------------------------------
# Keymap: action name -> Textual key. The UI binds these names; [keymap] may rebind any of them.

MAIN_KEYMAP: dict[str, str] = {
    "help": "question_mark",
    "focus_next": "tab",
    "focus_previous": "shift+tab",
    "open": "enter",
    "move_up": "K",
    "move_down": "J",
    "move_top": "T",
    "priority_foundation": "1",
    "priority_feature": "2",
    "priority_polish": "3",
    "toggle_hold": "h",
    "add_task": "a",
    "grow_pool": "plus",
    "shrink_pool": "minus",
    "toggle_pause": "p",
    "cancel": "x",
    "retry": "r",
    "merge_now": "m",
    "send_back": "g",
    "conflicts": "c",
    "log": "l",
    "summary": "s",
    "diff": "d",
    "command_palette": "ctrl+p",
    "quit": "q",
}
CONFLICT_KEYMAP: dict[str, str] = {
    "take_ours": "o",
    "take_theirs": "t",
    "take_both": "b",
    "take_file_ours": "O",
    "take_file_theirs": "T",
    "undo": "u",
    "next_hunk": "n",
    "previous_hunk": "p",
    "show_base": "a",
    "edit": "e",
    "hand_to_agent": "g",
    "requeue": "R",
    "later": "escape",
}
DIFF_KEYMAP: dict[str, str] = {
    "diff_layout": "v",
    "diff_next_file": "n",
    "diff_previous_file": "p",
    "diff_merge": "m",
    "diff_send_back": "g",
    "diff_close": "escape",
}
DEFAULT_KEYMAP: dict[str, str] = {**MAIN_KEYMAP, **CONFLICT_KEYMAP, **DIFF_KEYMAP}

# ---------------------------------------------------------------------------------------------------------
# Dataclasses

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
class Config:
    base: str = "main"
    workers: int = 3
    tasks: str = "TASKS.md"
    worktrees: str = "../{repo}-worktrees"
    branch: str = "task-{id}"
    agent: AgentConfig = field(default_factory=AgentConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    slots: SlotsConfig = field(default_factory=SlotsConfig)
    #: Path to the prompt template (relative to the repo root); "" = built-in.
    prompt_template: str = ""
    #: Path to the conflict-resolution prompt template; "" = built-in.
    resolve_template: str = ""
    #: Overrides of DEFAULT_KEYMAP only (action -> key); see resolved_keymap().
    keymap: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from "90s", "10m", "1h", "1h30m", "500ms" or a plain number of seconds; 0 means disabled.

    Raises ValueError with a message fit for the user.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'expected a duration like "60m" or seconds, got {show_value(value)}')
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"expected a duration that is not negative, got {show_value(value)}")
        try:
            seconds = float(text)
        except ValueError:
            seconds = _parse_duration_text(text, value)
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f'expected a duration like "60m" or seconds, got {show_value(value)}')
    if seconds < 0:
        raise ValueError(f"expected a duration that is not negative, got {show_value(value)}")
    return seconds


def _parse_duration_text(text: str, original: str) -> float:
    position = 0
    total = 0.0
    compact = re.sub(r"\s+", "", text)
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        raise ValueError(
            f'expected a duration like "60m", "90s", "1h30m" or seconds, got {show_value(original)}'
        )
    return total


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration, for writing: 5400 -> "1h30m", 0.5 -> "500ms", 0 -> "0"."""
    if seconds <= 0:
        return "0"
    millis = round(seconds * 1000)
    whole, ms = divmod(millis, 1000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s"), (ms, "ms")) if n]
    return "".join(parts) or "0"


def show_value(value: object) -> str:
    """A value as it would be written in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    return repr(value)


# ---------------------------------------------------------------------------------------------------------
# Reading and validating


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


_TOP_KEYS = ("base", "workers", "tasks", "worktrees", "branch", "agent", "merge", "slots", "prompt", "keymap")
_AGENT_KEYS = ("preset", "command", "timeout", "stuck_after", "retries", "output")
_MERGE_KEYS = ("auto", "message", "check", "on_check_fail", "on_conflict", "resolve_attempts")
_SLOTS_KEYS = ("reuse", "keep", "setup", "keep_at_end")
_PROMPT_KEYS = ("template", "resolve_template")


def config_from_dict(data: Mapping[str, Any], path: str = CONFIG_FILE, *, repo_name: str = "repo") -> Config:
    """Validate parsed TOML and build a Config. `repo_name` is used to check the rendered branch name."""
    defaults = Config()
    top = _Table(path, None, data, _TOP_KEYS)
    agent_table = _Table(path, "agent", top.subtable("agent"), _AGENT_KEYS)
    merge_table = _Table(path, "merge", top.subtable("merge"), _MERGE_KEYS)
    slots_table = _Table(path, "slots", top.subtable("slots"), _SLOTS_KEYS)
    prompt_table = _Table(path, "prompt", top.subtable("prompt"), _PROMPT_KEYS)
    keymap_data = top.subtable("keymap")

    agent = AgentConfig(
        preset=agent_table.choice("preset", defaults.agent.preset, tuple(PRESETS)),
        command=agent_table.string_list("command", defaults.agent.command),
        timeout=agent_table.duration("timeout", defaults.agent.timeout),
        stuck_after=agent_table.duration("stuck_after", defaults.agent.stuck_after),
        retries=agent_table.integer("retries", defaults.agent.retries, minimum=0),
        output=agent_table.choice("output", defaults.agent.output, ("", *PARSERS)),
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
        keymap=_read_keymap(path, keymap_data),
    )
    validate_config(config, path, repo_name=repo_name)
    return config


def _read_keymap(path: str, data: Mapping[str, Any]) -> dict[str, str]:
    keymap: dict[str, str] = {}
    for action, key in data.items():
        if action not in DEFAULT_KEYMAP:
            hint = get_close_matches(action, DEFAULT_KEYMAP, n=1)
            suggestion = f'; did you mean "{hint[0]}"?' if hint else ""
            raise ConfigError(path, "keymap", action, f"unknown action{suggestion}")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(path, "keymap", action, f'expected a key like "ctrl+k", got {show_value(key)}')
        keymap[action] = key.strip()
    return keymap


def _check_placeholders(template: str, allowed: Sequence[str]) -> str | None:
    """The first "{name}" in `template` that is not one of `allowed`, or None."""
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in allowed:
            return match.group(0)
    return None


def _placeholder_error(found: str, allowed: Sequence[str]) -> str:
    return f"unknown placeholder {found}; allowed: " + ", ".join("{" + name + "}" for name in allowed)


def validate_config(config: Config, path: str = CONFIG_FILE, *, repo_name: str = "repo") -> None:
    """Checks that span keys or need more than a type: placeholders, ref names, preset/command agreement."""
    if not is_valid_branch_name(config.base):
        raise ConfigError(path, None, "base", f"not a valid branch name: {show_value(config.base)}")
    for key in ("worktrees", "branch"):
        template = getattr(config, key)
        if bad := _check_placeholders(template, PATH_PLACEHOLDERS):
            raise ConfigError(path, None, key, _placeholder_error(bad, PATH_PLACEHOLDERS))
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

    agent = config.agent
    if agent.preset == "custom":
        if not agent.command or not agent.command[0].strip():
            raise ConfigError(
                path, "agent", "command", 'preset "custom" needs command = ["program", "arg", "{prompt}"]'
            )
    elif agent.command:
        raise ConfigError(path, "agent", "command", 'set preset = "custom" to use command')
    for argument in agent.command:
        if bad := _check_placeholders(argument, ARGV_PLACEHOLDERS):
            raise ConfigError(path, "agent", "command", _placeholder_error(bad, ARGV_PLACEHOLDERS))

    if bad := _check_placeholders(config.merge.message, MESSAGE_PLACEHOLDERS):
        raise ConfigError(path, "merge", "message", _placeholder_error(bad, MESSAGE_PLACEHOLDERS))
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
    _check_keymap_clashes(config, path)


def _check_keymap_clashes(config: Config, path: str) -> None:
    keymap = resolved_keymap(config)
    for group in (MAIN_KEYMAP, CONFLICT_KEYMAP, DIFF_KEYMAP):
        seen: dict[str, str] = {}
        for action in group:
            for key in keymap[action].split(","):
                key = key.strip()
                if key in seen:
                    changed = action if action in config.keymap else seen[key]
                    other = seen[key] if changed == action else action
                    raise ConfigError(
                        path, "keymap", changed, f"key {show_value(key)} is already bound to {other}"
                    )
                seen[key] = action


def is_valid_branch_name(name: str) -> bool:
    return bool(name) and pygit2.reference_is_valid_name(f"refs/heads/{name}")


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


# ---------------------------------------------------------------------------------------------------------
# Writing


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

[keymap]
# Rebind keys by action name, e.g.  quit = "ctrl+q"
# Actions: {", ".join(DEFAULT_KEYMAP)}
"""


# ---------------------------------------------------------------------------------------------------------
# Rendering


def agent_argv(config: Config) -> list[str]:
    """The argv template of the configured agent (custom: [agent] command)."""
    if config.agent.preset == "custom":
        return list(config.agent.command)
    return list(PRESETS[config.agent.preset].argv)


def agent_preset(config: Config) -> Preset:
    return PRESETS[config.agent.preset]


def output_format(config: Config) -> str:
    """How the agent's output is read: [agent] output, else its preset's format."""
    return config.agent.output or agent_preset(config).output


def prompt_on_stdin(config: Config) -> bool:
    """Whether the agent gets the prompt file as its stdin: its preset reads stdin, or a custom command
    names neither {prompt} nor {prompt_file} (so stdin is the only way it can get the prompt)."""
    if config.agent.preset != "custom":
        return agent_preset(config).stdin
    return not any("{prompt}" in arg or "{prompt_file}" in arg for arg in config.agent.command)


def too_long_argument(argv: Sequence[str]) -> str | None:
    """A message when one argument is longer than Linux lets a program take, else None."""
    for argument in argv:
        size = len(argument.encode("utf-8", errors="surrogateescape"))
        if size > MAX_ARGUMENT_BYTES:
            return (
                f"the prompt is {size // 1024} KB, too long for one command-line argument (at most 128 KB); "
                "put {prompt_file} in [agent] command instead of {prompt}, or leave both out to get it on stdin"
            )
    return None


def missing_agent_program(config: Config) -> str | None:
    """A message when the agent's program is not installed, else None."""
    argv = agent_argv(config)
    needs = agent_preset(config).needs or ((argv[0],) if argv else ())
    for program in needs:
        if shutil.which(program) is None:
            return f'agent preset "{config.agent.preset}" needs `{program}`, which is not on PATH'
    return None


def _substitute(template: str, values: Mapping[str, str]) -> str:
    # One pass: text that a value brings in is never substituted again.
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def render_argv(template: Sequence[str], *, prompt: str, prompt_file: str, worktree: str) -> list[str]:
    """Substitute {prompt}, {prompt_file}, {worktree} inside each argument; one argument stays one argument."""
    values = {"prompt": prompt, "prompt_file": prompt_file, "worktree": worktree}
    return [_substitute(argument, values) for argument in template]


def expand_path_template(template: str, *, repo: str, id: str) -> str:
    """Render a `worktrees` or `branch` template."""
    return _substitute(template, {"repo": repo, "id": id})


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
    lines: list[str] = []
    for line in template.split("\n"):
        used = [match.group(1) for match in _PLACEHOLDER.finditer(line) if match.group(1) in values]
        if _TRAILER.match(line) and used and any(not values[name].strip() for name in used):
            continue
        lines.append(_substitute(line, values))
    return "\n".join(lines).rstrip()


def resolved_keymap(config: Config) -> dict[str, str]:
    """Every action's key: the defaults with [keymap] overrides applied."""
    return {**DEFAULT_KEYMAP, **config.keymap}
