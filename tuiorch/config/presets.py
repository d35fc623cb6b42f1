"""Agent presets: the argv, identity, output format and needs of each supported agent CLI, and what the
configured agent's preset says about how to start it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tuiorch.config.settings import Config


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
