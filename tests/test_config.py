"""tuiorch.toml: defaults, validation messages, round trips, presets and argv/message rendering."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tuiorch.config import (
    DEFAULT_KEYMAP,
    PRESETS,
    Config,
    ConfigError,
    agent_argv,
    branch_name,
    config_from_dict,
    config_to_dict,
    default_config_toml,
    format_duration,
    load_config,
    parse_duration,
    prompt_on_stdin,
    render_argv,
    render_commit_message,
    resolved_keymap,
    too_long_argument,
    write_config,
)


def write_toml(root: Path, text: str) -> Path:
    (root / "tuiorch.toml").write_text(text)
    return root


def load_error(root: Path, text: str) -> str:
    write_toml(root, text)
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return str(info.value)


# --- defaults and round trips ------------------------------------------------------------------------------


def test_missing_file_gives_design_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == Config()
    assert (config.base, config.workers, config.tasks) == ("main", 3, "TASKS.md")
    assert (config.worktrees, config.branch) == ("../{repo}-worktrees", "task-{id}")
    assert config.agent.preset == "claude"
    assert (config.agent.timeout, config.agent.stuck_after, config.agent.retries) == (3600.0, 600.0, 1)
    assert config.merge.auto and config.merge.on_conflict == "ask" and config.merge.resolve_attempts == 2
    assert config.slots.keep == [".venv", "node_modules"] and config.slots.reuse


@pytest.mark.parametrize("preset", list(PRESETS))
def test_default_toml_is_commented_and_loads_back(tmp_path: Path, preset: str) -> None:
    text = default_config_toml(preset)
    assert "# the branch finished work merges into" in text
    write_toml(tmp_path, text)
    config = load_config(tmp_path)
    expected = Config()
    expected.agent.preset = preset
    if preset == "custom":
        expected.agent.command = ["my-agent", "--task-file", "{prompt_file}"]
    assert config == expected


def test_default_toml_for_unknown_preset_is_an_error() -> None:
    with pytest.raises(ConfigError, match="expected one of claude"):
        default_config_toml("gpt")


def test_write_config_round_trips_every_setting(tmp_path: Path) -> None:
    config = Config(base="trunk", workers=5, tasks="tasks.toml", worktrees="/tmp/{repo}/wt", branch="t/{id}")
    config.agent.preset = "custom"
    config.agent.command = ["my-agent", "--msg={prompt}", "{worktree}"]
    config.agent.timeout = 5400.0
    config.agent.stuck_after = 0.0
    config.agent.retries = 0
    config.merge.auto = False
    config.merge.check = "pytest -q"
    config.merge.on_conflict = "agent"
    config.slots.keep = [".venv"]
    config.keymap = {"quit": "ctrl+q"}
    write_config(tmp_path / "tuiorch.toml", config)
    data = tomllib.loads((tmp_path / "tuiorch.toml").read_text())
    assert data["agent"]["timeout"] == "1h30m" and data["agent"]["stuck_after"] == "0"
    assert load_config(tmp_path) == config
    assert config_from_dict(config_to_dict(config)) == config


# --- durations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("500ms", 0.5),
        ("1.5m", 90.0),
        ("45", 45.0),
        (45, 45.0),
        (2.5, 2.5),
        ("0", 0.0),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["-5m", -1, "ten minutes", "5x", "", "m", "1h30", True, None, [1], "nan", "inf"]
)
def test_parse_duration_rejects_garbage(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("seconds", [0.0, 0.5, 59.0, 90.0, 600.0, 3600.0, 5400.0, 3661.25])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- validation messages ------------------------------------------------------------------------------------


def test_wrong_type_names_file_table_key_and_expectation(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[agent]\ntimeout = true\n")
    assert message == 'tuiorch.toml: [agent] timeout: expected a duration like "60m" or seconds, got true'


def test_negative_duration_is_an_error(tmp_path: Path) -> None:
    assert "not negative" in load_error(tmp_path, '[agent]\nstuck_after = "-5m"\n')


def test_toml_syntax_error_carries_tomllib_message(tmp_path: Path) -> None:
    message = load_error(tmp_path, "workers = \n")
    assert message.startswith("tuiorch.toml: ") and "line 1" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wokers = 2\n", 'tuiorch.toml: wokers: unknown key; did you mean "workers"?'),
        ('[agent]\npreset = "claude"\nmodel = "x"\n', "tuiorch.toml: [agent] model: unknown key"),
        ("[notifications]\nx = 1\n", "tuiorch.toml: notifications: unknown table; known: base, workers"),
        ("workers = 0\n", "tuiorch.toml: workers: expected a whole number >= 1, got 0"),
        ('workers = "3"\n', 'tuiorch.toml: workers: expected a whole number, got "3"'),
        ("workers = true\n", "tuiorch.toml: workers: expected a whole number, got true"),
        ("[agent]\nretries = -1\n", "tuiorch.toml: [agent] retries: expected a whole number >= 0, got -1"),
        ('[agent]\npreset = "gpt"\n', "tuiorch.toml: [agent] preset: expected one of claude, codex"),
        (
            '[merge]\non_conflict = "merge"\n',
            "tuiorch.toml: [merge] on_conflict: expected one of ask, agent, requeue",
        ),
        ('[merge]\non_check_fail = "x"\n', "tuiorch.toml: [merge] on_check_fail: expected one of ask"),
        ('[merge]\nauto = "yes"\n', 'tuiorch.toml: [merge] auto: expected true or false, got "yes"'),
        ('[slots]\nkeep = ".venv"\n', 'tuiorch.toml: [slots] keep: expected a list of strings, got ".venv"'),
        (
            '[slots]\nkeep = ["../outside"]\n',
            "tuiorch.toml: [slots] keep: expected paths inside the worktree",
        ),
        (
            '[slots]\nsetup = "make \\"unbalanced"\n',
            "tuiorch.toml: [slots] setup: cannot split into arguments",
        ),
        ('agent = "claude"\n', "tuiorch.toml: agent: expected a table [agent]"),
        (
            '[prompt]\ntemplat = "x"\n',
            'tuiorch.toml: [prompt] templat: unknown key; did you mean "template"?',
        ),
        (
            '[prompt]\ntemplate = "missing.md"\n',
            "tuiorch.toml: [prompt] template: file not found: missing.md",
        ),
    ],
)
def test_invalid_settings_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_custom_preset_needs_a_command(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[agent]\npreset = "custom"\n')
    assert message.startswith('tuiorch.toml: [agent] command: preset "custom" needs command')
    message = load_error(tmp_path, '[agent]\npreset = "custom"\ncommand = ["", "x"]\n')
    assert "[agent] command" in message
    message = load_error(tmp_path, '[agent]\npreset = "custom"\ncommand = ["a", 1]\n')
    assert message == 'tuiorch.toml: [agent] command: expected a list of strings, got ["a", 1]'


def test_command_with_a_non_custom_preset_is_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[agent]\npreset = "claude"\ncommand = ["my-agent"]\n')
    assert message == 'tuiorch.toml: [agent] command: set preset = "custom" to use command'


def test_command_placeholders_are_checked(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[agent]\npreset = "custom"\ncommand = ["a", "{promt}"]\n')
    assert "unknown placeholder {promt}" in message and "{prompt_file}" in message
    # JSON-like braces are not placeholders and pass through.
    write_toml(tmp_path, '[agent]\npreset = "custom"\ncommand = ["a", "{\\"k\\": 1}", "{prompt}"]\n')
    assert load_config(tmp_path).agent.command == ["a", '{"k": 1}', "{prompt}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'branch = "task-{name}"\n',
            "tuiorch.toml: branch: unknown placeholder {name}; allowed: {repo}, {id}",
        ),
        ('worktrees = "../{repo}-{slot}"\n', "tuiorch.toml: worktrees: unknown placeholder {slot}"),
        ('branch = "task"\n', "tuiorch.toml: branch: must contain {id}"),
        (
            'branch = "task..{id}"\n',
            'tuiorch.toml: branch: "task..{id}" gives "task..1", not a valid branch name',
        ),
        ('branch = "bad {id}"\n', "tuiorch.toml: branch:"),
        ('base = "no~pe"\n', 'tuiorch.toml: base: not a valid branch name: "no~pe"'),
        (
            '[merge]\nmessage = "{type}: {summary}"\n',
            "tuiorch.toml: [merge] message: unknown placeholder {summary}",
        ),
    ],
)
def test_templates_are_validated(tmp_path: Path, text: str, expected: str) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_branch_template_with_repo_uses_the_repo_folder_name(tmp_path: Path) -> None:
    root = tmp_path / "has space"
    root.mkdir()
    # The folder name makes an invalid ref, so the check must use it rather than a placeholder sample.
    assert "not a valid branch name" in load_error(root, 'branch = "{repo}/{id}"\n')
    good = tmp_path / "proj"
    good.mkdir()
    write_toml(good, 'branch = "{repo}/task-{id}"\n')
    config = load_config(good)
    assert branch_name(config, "7", "proj") == "proj/task-7"


def test_keymap_overrides_and_errors(tmp_path: Path) -> None:
    write_toml(tmp_path, '[keymap]\nquit = "ctrl+q"\nretry = "R"\n')
    config = load_config(tmp_path)
    keys = resolved_keymap(config)
    assert keys["quit"] == "ctrl+q" and keys["retry"] == "R" and keys["cancel"] == "x"
    # The conflict modal's "R" (requeue) lives in another context, so main-screen "R" is allowed.
    assert keys["requeue"] == "R"
    assert set(keys) == set(DEFAULT_KEYMAP)
    assert load_error(tmp_path, '[keymap]\nqiut = "x"\n').startswith(
        'tuiorch.toml: [keymap] qiut: unknown action; did you mean "quit"?'
    )
    assert load_error(tmp_path, "[keymap]\nquit = 3\n").startswith(
        'tuiorch.toml: [keymap] quit: expected a key like "ctrl+k", got 3'
    )
    assert load_error(tmp_path, '[keymap]\nretry = "x"\n') == (
        'tuiorch.toml: [keymap] retry: key "x" is already bound to cancel'
    )


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "tuiorch.toml").write_bytes(b'base = "\xff"\n')
    with pytest.raises(ConfigError, match="tuiorch.toml: cannot read"):
        load_config(tmp_path)


def test_cli_style_error_has_no_traceback(tmp_path: Path) -> None:
    """What a front end prints for a bad file is one line, no Python internals."""
    write_toml(tmp_path, "[agent]\ntimeout = [1]\n")
    try:
        load_config(tmp_path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and "Traceback" not in str(exc)
        assert exc.table == "agent" and exc.key == "timeout"
    else:
        pytest.fail("expected ConfigError")


# --- presets and argv -------------------------------------------------------------------------------------


def test_presets_use_the_headless_flags_the_real_clis_need() -> None:
    claude = PRESETS["claude"]
    assert claude.argv[:2] == ("claude", "-p") and claude.stdin
    assert {"stream-json", "--verbose", "acceptEdits", "--allowedTools", "--max-turns"} <= set(claude.argv)
    assert (claude.agent_name, claude.agent_email, claude.output) == (
        "Claude",
        "noreply@anthropic.com",
        "claude-stream",
    )
    codex = PRESETS["codex"]
    assert codex.argv == ("codex", "exec", "--json", "--sandbox", "workspace-write", "-")
    assert codex.stdin and not codex.commits  # its sandbox keeps .git read-only
    aider = PRESETS["aider"]
    assert {"--yes-always", "--no-auto-commits", "--no-pretty", "--no-gitignore"} <= set(aider.argv)
    assert "{prompt_file}" in aider.argv and aider.output == "aider-text" and not aider.commits
    gemini = PRESETS["gemini"]
    assert "yolo" in gemini.argv and gemini.output == "gemini-stream" and gemini.stdin
    assert ("GEMINI_CLI_TRUST_WORKSPACE", "true") in gemini.env
    assert PRESETS["opencode"].argv == ("opencode", "run", "--format", "json", "--dir", "{worktree}")
    for preset in PRESETS.values():
        assert preset.summary and preset.needs_text and preset.sets_text, preset.name
        if preset.name != "custom":
            # The prompt reaches every preset: on stdin or through a file, never as one huge argument.
            assert preset.stdin or any("{prompt_file}" in argument for argument in preset.argv), preset.name
            assert not any("{prompt}" in argument for argument in preset.argv), preset.name


def test_a_custom_command_without_a_prompt_placeholder_reads_stdin() -> None:
    config = config_from_dict({"agent": {"preset": "custom", "command": ["bot", "--cwd", "{worktree}"]}})
    assert prompt_on_stdin(config)
    config = config_from_dict({"agent": {"preset": "custom", "command": ["bot", "{prompt}"]}})
    assert not prompt_on_stdin(config)
    assert too_long_argument(["bot", "x" * 1000]) is None
    message = too_long_argument(["bot", "x" * 200_000])
    assert message and "195 KB" in message and "{prompt_file}" in message


def test_demo_preset_runs_this_python() -> None:
    config = Config()
    config.agent.preset = "demo"
    assert agent_argv(config) == [sys.executable, "-m", "tuiorch.demo_agent", "{prompt_file}"]
    assert PRESETS["demo"].needs == () and PRESETS["demo"].output == "text"


def test_custom_argv_comes_from_command() -> None:
    config = config_from_dict({"agent": {"preset": "custom", "command": ["bot", "--file", "{prompt_file}"]}})
    assert agent_argv(config) == ["bot", "--file", "{prompt_file}"]
    # The template is a copy: rendering must not change the config.
    agent_argv(config).append("x")
    assert config.agent.command == ["bot", "--file", "{prompt_file}"]


def test_render_argv_substitutes_inside_arguments() -> None:
    argv = render_argv(
        ["bot", "--msg={prompt}", "{prompt_file}", "-C", "{worktree}", "{other}"],
        prompt="fix it",
        prompt_file="/tmp/p.md",
        worktree="/wt/1",
    )
    assert argv == ["bot", "--msg=fix it", "/tmp/p.md", "-C", "/wt/1", "{other}"]


@pytest.mark.parametrize(
    "prompt",
    ["{worktree}", "$(rm -rf /)", "; ls", "a b\nc 'd' \"e\"", "`id` && echo {prompt_file}", "--help"],
)
def test_render_argv_passes_hostile_prompt_verbatim_as_one_argument(prompt: str, tmp_path: Path) -> None:
    argv = render_argv(["x", "{prompt}"], prompt=prompt, prompt_file="/p", worktree="/w")
    assert argv == ["x", prompt]
    # And a real process receives exactly that one argument (no shell in between).
    script = "import sys, json; print(json.dumps(sys.argv[1:]))"
    command = render_argv(
        [sys.executable, "-c", script, "{prompt}"], prompt=prompt, prompt_file="", worktree=""
    )
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path, timeout=30)
    assert json.loads(done.stdout) == [prompt]
    assert not (tmp_path / "ls").exists()


# --- commit messages ----------------------------------------------------------------------------------------


def test_commit_message_matches_the_seed_format() -> None:
    message = render_commit_message(
        Config().merge.message,
        type="feat",
        title="Conflict modal",
        id="3",
        agent_name="Claude",
        agent_email="noreply@anthropic.com",
    )
    assert message == (
        "feat: Conflict modal\n\nRefs: TASKS.md#task-3\nCo-Authored-By: Claude <noreply@anthropic.com>"
    )


@pytest.mark.parametrize(
    "title", ['Use {id} and {title} in "quotes"', "dict {a: 1} {{x}}", "it's {agent_email}"]
)
def test_commit_message_titles_with_braces_and_quotes_stay_verbatim(title: str) -> None:
    message = render_commit_message(
        "{type}: {title}\n\nRefs: TASKS.md#task-{id}",
        type="fix",
        title=title,
        id="9",
        agent_name="",
        agent_email="",
    )
    assert message == f"fix: {title}\n\nRefs: TASKS.md#task-9"


def test_trailer_with_empty_identity_is_dropped() -> None:
    template = Config().merge.message
    message = render_commit_message(template, type="feat", title="T", id="1", agent_name="", agent_email="")
    assert message == "feat: T\n\nRefs: TASKS.md#task-1"
    # A half-empty identity is as broken a trailer as an empty one.
    message = render_commit_message(
        template, type="feat", title="T", id="1", agent_name="opencode", agent_email=""
    )
    assert "Co-Authored-By" not in message
    # A non-trailer line with an empty value stays.
    message = render_commit_message(
        "{type}: {title}\n\nby {agent_name}", type="docs", title="T", id="1", agent_name="", agent_email=""
    )
    assert message == "docs: T\n\nby"


def test_the_readme_shows_each_presets_real_command() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in ("claude", "codex", "aider", "gemini", "opencode"):
        preset = PRESETS[name]
        assert f"| `{name}` | `{' '.join(preset.argv)}`" in readme, name
