"""The engine must not know Textual: only tuiorch.ui may import it."""

from __future__ import annotations

import ast
from pathlib import Path

import tuiorch

PACKAGE = Path(tuiorch.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_modules_never_import_textual() -> None:
    engine_files = [p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts]
    assert engine_files, "found no engine modules to check"
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(m for m in _imported_modules(p) if m.split(".")[0] in {"textual", "rich"})
        for p in engine_files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
