"""Layering: the import contracts in pyproject.toml hold, and the engine runs without loading Textual."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    """lint-imports checks every import, also lazy and type-only ones, against pyproject's contracts."""
    program = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert program, "lint-imports is missing: install the test extra (pip install -e '.[test]')"
    done = subprocess.run([program, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_headless_run_path_loads_no_textual() -> None:
    """What `tuiorch run --headless` imports leaves Textual and Rich unloaded (the contracts see static
    imports only; this sees what Python really loads, through third-party packages too)."""
    code = (
        "import sys\n"
        "import tuiorch.cli, tuiorch.headless, tuiorch.orchestrator, tuiorch.demo\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'rich'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
