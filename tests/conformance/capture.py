"""Run one agent CLI once, as tuiorch's preset runs it, against the scripted model server; keep what it prints.

    python -m tests.conformance.capture PRESET CASE [--out DIR]

CASE is one of CASES below. The CLI runs in a linked worktree of a fresh temp repository, with its own scratch
HOME (tests/conformance/cli_env.py). Prints the exit code, time, stdout, stderr and the model calls; with
--out, writes DIR/PRESET-CASE.{jsonl|txt} (stdout) and DIR/PRESET-CASE.stderr.txt, with temp paths and the
port replaced by fixed ones: the fixtures in tests/data/agent_output/real/ are made this way.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conformance.cli_env import cli_env
from tests.conformance.model_server import ModelServer
from tuiorch.config import PRESETS, render_argv
from tuiorch.prompt import BUILTIN_TEMPLATE, render_prompt
from tuiorch.tasks import parse_tasks_md

WRITE = "```write hello.txt\nhello world\n```"
#: case -> (task body, the CLI's turn limit where its config has one)
CASES: dict[str, tuple[str, int | None]] = {
    "success": (WRITE + "\nmodel: think", None),
    "401": ("model: fail 401", None),
    "500": ("model: fail 500", None),
    "529": ("model: fail 529", None),
    "max-turns": ("model: loop", 5),
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def capture(
    preset: str, case: str, *, timeout: float = 300
) -> tuple[int | str, float, str, str, ModelServer]:
    body, max_turns = CASES[case]
    tmp = Path(tempfile.mkdtemp(prefix="capture-"))
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    worktree = tmp / "wt"
    git(repo, "worktree", "add", "-q", "-b", "tuiorch/1", str(worktree))
    [task] = parse_tasks_md(f"# Tasks\n\n## Task 1: Say hello\n\n{body}\n")
    spec = PRESETS[preset]
    prompt = render_prompt(
        BUILTIN_TEMPLATE,
        task=task,
        worktree=worktree,
        branch="tuiorch/1",
        agent_name=spec.agent_name,
        agent_email=spec.agent_email,
        commits=spec.commits,
    )
    prompt_file = tmp / "prompt.md"
    prompt_file.write_text(prompt)
    argv = render_argv(list(spec.argv), prompt=prompt, prompt_file=str(prompt_file), worktree=str(worktree))
    server = ModelServer().start()
    try:
        env = cli_env(preset, server.url, tmp / "home", max_turns=max_turns)
        env.update(dict(spec.env))  # what tuiorch sets for the preset
        env["PWD"] = str(worktree)
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=worktree,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=prompt if spec.stdin else "",
            )
            code: int | str = done.returncode
            stdout, stderr = done.stdout, done.stderr
        except subprocess.TimeoutExpired as expired:
            code = "timeout"
            stdout = (
                (expired.stdout or b"").decode()
                if isinstance(expired.stdout, bytes)
                else expired.stdout or ""
            )
            stderr = (
                (expired.stderr or b"").decode()
                if isinstance(expired.stderr, bytes)
                else expired.stderr or ""
            )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    fixed = {str(tmp): "/tmp/conformance", server.url.removeprefix("http://"): "127.0.0.1:8765"}
    return code, elapsed, _fix(stdout, fixed), _fix(stderr, fixed), server


def _fix(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return re.sub(r"/\S*/agent-clis/", "/opt/agent-clis/", text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Capture one agent CLI's output against the model server.")
    parser.add_argument("preset", choices=["claude", "codex", "opencode", "gemini", "aider"])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, help="folder to write the fixture files into")
    args = parser.parse_args()
    code, elapsed, stdout, stderr, server = capture(args.preset, args.case)
    print(f"exit {code} after {elapsed:.1f}s\n--- stdout\n{stdout}--- stderr\n{stderr}--- model calls")
    for request in server.calls():
        print(f"{request.method} {request.path} {request.vendor} task={request.task_id} -> {request.status}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = f"{args.preset}-{args.case}"
        (args.out / f"{name}.{'txt' if args.preset == 'aider' else 'jsonl'}").write_text(stdout)
        if stderr.strip():
            (args.out / f"{name}.stderr.txt").write_text(stderr)


if __name__ == "__main__":
    main()
