"""Configuration: tuiorch.toml's settings, agent presets, the keymap, and the templates they render.

Every setting is validated when the file is read: an unknown key or a wrong type is a ConfigError naming
the file, table and key, because a setting that is silently ignored is worse than one that fails loudly.
The names below are the package's public surface; each lives in the module that owns its job.
"""

from tuiorch.config.keymap import (
    CONFLICT_KEYMAP,
    DEFAULT_KEYMAP,
    DIFF_KEYMAP,
    MAIN_KEYMAP,
    resolved_keymap,
)
from tuiorch.config.load import config_from_dict, is_valid_branch_name, load_config, validate_config
from tuiorch.config.presets import (
    MAX_ARGUMENT_BYTES,
    PRESETS,
    Preset,
    agent_argv,
    agent_preset,
    missing_agent_program,
    output_format,
    prompt_on_stdin,
    too_long_argument,
)
from tuiorch.config.settings import (
    ARGV_PLACEHOLDERS,
    DEFAULT_MESSAGE,
    MESSAGE_PLACEHOLDERS,
    PATH_PLACEHOLDERS,
    RESOLUTIONS,
    AgentConfig,
    Config,
    MergeConfig,
    RunnerConfig,
    SlotsConfig,
)
from tuiorch.config.templating import (
    branch_name,
    expand_path_template,
    render_argv,
    render_commit_message,
    worktree_dir,
)
from tuiorch.config.values import CONFIG_FILE, ConfigError, format_duration, parse_duration, show_value
from tuiorch.config.write import config_to_dict, default_config_toml, write_config

__all__ = [
    "ARGV_PLACEHOLDERS",
    "CONFIG_FILE",
    "CONFLICT_KEYMAP",
    "DEFAULT_KEYMAP",
    "DEFAULT_MESSAGE",
    "DIFF_KEYMAP",
    "MAIN_KEYMAP",
    "MAX_ARGUMENT_BYTES",
    "MESSAGE_PLACEHOLDERS",
    "PATH_PLACEHOLDERS",
    "PRESETS",
    "RESOLUTIONS",
    "AgentConfig",
    "Config",
    "ConfigError",
    "MergeConfig",
    "RunnerConfig",
    "Preset",
    "SlotsConfig",
    "agent_argv",
    "agent_preset",
    "branch_name",
    "config_from_dict",
    "config_to_dict",
    "default_config_toml",
    "expand_path_template",
    "format_duration",
    "is_valid_branch_name",
    "load_config",
    "missing_agent_program",
    "output_format",
    "parse_duration",
    "prompt_on_stdin",
    "render_argv",
    "render_commit_message",
    "resolved_keymap",
    "show_value",
    "too_long_argument",
    "validate_config",
    "worktree_dir",
    "write_config",
]
