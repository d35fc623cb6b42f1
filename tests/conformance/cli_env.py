"""Where the agent CLIs are installed, and the scratch HOME, config files and environment that point each one
at the scripted model server and at nothing of the user's.

    env = cli_env("claude", server.url, tmp_path / "home")   # a complete environment for the agent process
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["CLIS", "PRESET_CLIS", "cli_env", "cli_path", "install_root", "missing_clis"]

REPO = Path(__file__).resolve().parents[2]

#: The executables each preset runs, as tuiorch's presets name them.
PRESET_CLIS = {
    "claude": "claude",
    "codex": "codex",
    "opencode": "opencode",
    "gemini": "gemini",
    "aider": "aider",
}
CLIS = tuple(PRESET_CLIS.values())

#: The model name each CLI asks for. Claude's is a real one so that Claude Code prices the usage it reports.
MODELS = {
    "claude": "claude-sonnet-4-5",
    "codex": "fake-model",
    "opencode": "fake-model",
    "gemini": "gemini-2.5-flash",
    "aider": "fake-model",
}

# The retry settings the CLIs allow, kept short so a failing model costs seconds, not minutes.
CLAUDE_MAX_RETRIES = "1"
CODEX_RETRIES = 0


def install_root() -> Path:
    """scripts/install-agent-clis.sh installs here; TUIORCH_AGENT_CLIS points elsewhere (same layout)."""
    return Path(os.environ.get("TUIORCH_AGENT_CLIS") or REPO / ".cache" / "agent-clis")


def bin_dirs() -> list[Path]:
    root = install_root()
    return [root / "npm" / "node_modules" / ".bin", root / "aider-venv" / "bin"]


def cli_path(name: str) -> Path | None:
    for folder in bin_dirs():
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_clis() -> list[str]:
    return [name for name in CLIS if cli_path(name) is None]


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def cli_env(
    preset: str, url: str, home: Path, *, max_turns: int | None = None, base_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for `preset`'s CLI: HOME and XDG folders in `home`, its config there, the model at `url`.

    `max_turns` sets the CLI's own turn limit where its config has one (gemini, opencode); claude's is in
    the preset's argv, codex and aider have none.

    Keeps PATH (with the CLIs' folders first) and the git identity variables of `base_env` (default: ours),
    and nothing else of it: no key or setting of the user's can reach the CLI.
    """
    source = dict(os.environ if base_env is None else base_env)
    home.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in source.items()
        if key in ("LANG", "LC_ALL", "TERM", "TZ", "TMPDIR", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL")
    }
    node = shutil.which("node", path=source.get("PATH"))
    path_parts = [str(folder) for folder in bin_dirs()]
    if node:
        path_parts.append(str(Path(node).parent))
    path_parts.append(source.get("PATH", "/usr/bin:/bin"))
    env.update(
        {
            "PATH": os.pathsep.join(path_parts),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "NO_COLOR": "1",
            "CI": "true",
        }
    )
    setup = {"claude": _claude, "codex": _codex, "opencode": _opencode, "gemini": _gemini, "aider": _aider}[
        preset
    ]
    env.update(setup(url, home, max_turns))
    if preset == "opencode":
        prepare_opencode_data(env)
    return env


def _claude(url: str, home: Path, max_turns: int | None) -> dict[str, str]:
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_MODEL": MODELS["claude"],
        "CLAUDE_CODE_MAX_RETRIES": CLAUDE_MAX_RETRIES,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def _codex(url: str, home: Path, max_turns: int | None) -> dict[str, str]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{MODELS["codex"]}"\n'
        'model_provider = "fake"\n'
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{url}/v1"\n'
        'env_key = "FAKE_MODEL_API_KEY"\n'
        'wire_api = "responses"\n'
        f"request_max_retries = {CODEX_RETRIES}\n"
        f"stream_max_retries = {CODEX_RETRIES}\n"
    )
    # Codex refuses to set up its sandbox helper when CODEX_HOME lies under the temp folder (and then every
    # command fails with "execvp codex-linux-sandbox"): a temp folder of its own, beside CODEX_HOME.
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    return {"CODEX_HOME": str(codex_home), "FAKE_MODEL_API_KEY": "test-key", "TMPDIR": str(tmp)}


def _opencode(url: str, home: Path, max_turns: int | None) -> dict[str, str]:
    limits = {"agent": {"build": {"steps": max_turns}}} if max_turns else {}
    _write_json(
        home / ".config" / "opencode" / "opencode.json",
        {
            **limits,
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": False,
            "share": "disabled",
            "model": f"fake/{MODELS['opencode']}",
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "fake",
                    "options": {"baseURL": f"{url}/v1", "apiKey": "test-key"},
                    "models": {MODELS["opencode"]: {"name": "fake model"}},
                }
            },
        },
    )
    return {
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    }


def prepare_opencode_data(env: dict[str, str]) -> None:
    """Create opencode's database in the scratch HOME before agents start.

    Two opencode processes starting together on a fresh data folder race through its schema migration and
    one fails ("Failed query: CREATE TABLE `workspace`"). A user's HOME has the database after the first
    run; a scratch HOME must be given one first, or tests on two workers fail for that alone.
    """
    exe = cli_path("opencode")
    if exe is not None:
        subprocess.run([str(exe), "session", "list"], env=env, capture_output=True, timeout=120, check=False)


def _gemini(url: str, home: Path, max_turns: int | None) -> dict[str, str]:
    model: dict[str, object] = {"name": MODELS["gemini"]}
    if max_turns:
        model["maxSessionTurns"] = max_turns
    _write_json(
        home / ".gemini" / "settings.json",
        {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
            "model": model,
        },
    )
    return {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "test-key", "GEMINI_MODEL": MODELS["gemini"]}


def _aider(url: str, home: Path, max_turns: int | None) -> dict[str, str]:
    (home / ".aider.conf.yml").write_text(
        f"model: openai/{MODELS['aider']}\ncheck-update: false\nanalytics: false\nanalytics-disable: true\n"
        "show-release-notes: false\n"
    )
    _write_json(
        home / ".aider.model.metadata.json",
        {
            f"openai/{MODELS['aider']}": {
                "max_tokens": 8192,
                "max_input_tokens": 200000,
                "max_output_tokens": 8192,
                "input_cost_per_token": 0.000003,
                "output_cost_per_token": 0.000015,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        },
    )
    return {"OPENAI_API_BASE": f"{url}/v1", "OPENAI_API_KEY": "test-key"}
