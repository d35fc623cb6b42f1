"""Sizes and complexity of the tuiorch package against its targets.

    python scripts/check_sizes.py            # report; exit 0
    python scripts/check_sizes.py --strict   # exit 1 when a target is missed
    python scripts/check_sizes.py --json     # the numbers, for tools

Targets: no module over 450 lines, no class over 350, no function over 60; radon's average cyclomatic
complexity at most 3.0 and no block ranked D or worse (complexity above 20). Lines are physical lines,
docstrings and comments included; a class or function is measured from its first decorator to its last
line. The average is the one `radon cc -a` prints: over every function, method and class block.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tuiorch"

MODULE_MAX = 450
CLASS_MAX = 350
FUNCTION_MAX = 60
AVERAGE_MAX = 3.0
#: radon ranks a block D from complexity 21 on.
WORST_ALLOWED_COMPLEXITY = 20


@dataclass(frozen=True)
class Sized:
    where: str  # path:line
    name: str
    lines: int


@dataclass(frozen=True)
class Block:
    where: str
    name: str
    complexity: int
    rank: str


@dataclass
class Report:
    modules: list[Sized] = field(default_factory=list)
    classes: list[Sized] = field(default_factory=list)
    functions: list[Sized] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def average(self) -> float:
        return sum(b.complexity for b in self.blocks) / len(self.blocks) if self.blocks else 0.0

    def over(self) -> dict[str, list]:
        """Everything that misses a target, by target."""
        return {
            f"modules over {MODULE_MAX} lines": [m for m in self.modules if m.lines > MODULE_MAX],
            f"classes over {CLASS_MAX} lines": [c for c in self.classes if c.lines > CLASS_MAX],
            f"functions over {FUNCTION_MAX} lines": [f for f in self.functions if f.lines > FUNCTION_MAX],
            "blocks ranked D or worse": [b for b in self.blocks if b.complexity > WORST_ALLOWED_COMPLEXITY],
        }

    def failures(self) -> list[str]:
        missed = [f"{len(items)} {what}" for what, items in self.over().items() if items]
        if self.average > AVERAGE_MAX:
            missed.append(f"average complexity {self.average:.2f} > {AVERAGE_MAX}")
        return missed


def _span(node: ast.AST) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    return first, node.end_lineno or node.lineno


def measure(package: Path = PACKAGE) -> Report:
    report = Report()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        report.modules.append(Sized(relative, relative, len(text.splitlines())))
        for node in ast.walk(ast.parse(text, filename=relative)):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                first, last = _span(node)
                sized = Sized(f"{relative}:{node.lineno}", node.name, last - first + 1)
                (report.classes if isinstance(node, ast.ClassDef) else report.functions).append(sized)
        for block in cc_visit(text):
            name = block.fullname if hasattr(block, "fullname") else block.name
            report.blocks.append(Block(f"{relative}:{block.lineno}", name, block.complexity, cc_rank(block.complexity)))
    return report


def _largest(items: list, key: str, count: int) -> list:
    return sorted(items, key=lambda item: getattr(item, key), reverse=True)[:count]


def print_report(report: Report, top: int) -> None:
    total_lines = sum(m.lines for m in report.modules)
    print(f"tuiorch: {len(report.modules)} modules, {total_lines} lines, {len(report.functions)} functions")
    print(
        f"radon: {len(report.blocks)} blocks, average complexity {report.average:.2f} "
        f"(target <= {AVERAGE_MAX}), worst {max((b.complexity for b in report.blocks), default=0)}"
    )
    for title, items, key in (
        (f"largest modules (target <= {MODULE_MAX} lines)", report.modules, "lines"),
        (f"largest classes (target <= {CLASS_MAX} lines)", report.classes, "lines"),
        (f"longest functions (target <= {FUNCTION_MAX} lines)", report.functions, "lines"),
        (f"most complex blocks (target <= {WORST_ALLOWED_COMPLEXITY}, rank C)", report.blocks, "complexity"),
    ):
        print(f"\n{title}:")
        for item in _largest(items, key, top):
            value = getattr(item, key)
            rank = f" {item.rank}" if isinstance(item, Block) else ""
            print(f"  {value:>5}{rank}  {item.name}  ({item.where})" if item.name != item.where else f"  {value:>5}  {item.where}")
    print()
    for what, items in report.over().items():
        print(f"{what}: {len(items)}")
    failures = report.failures()
    print("targets met" if not failures else "targets missed: " + "; ".join(failures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--top", type=int, default=10, help="how many of the largest to list (default 10)")
    args = parser.parse_args(argv)
    report = measure()
    if args.json:
        data = {
            "average_complexity": round(report.average, 3),
            "over": {what: [asdict(item) for item in items] for what, items in report.over().items()},
            "failures": report.failures(),
        }
        print(json.dumps(data, indent=2))
    else:
        print_report(report, args.top)
    return 1 if args.strict and report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
