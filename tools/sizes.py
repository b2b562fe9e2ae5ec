"""Report modules over 400 lines and functions over 60 lines under src/ (DESIGN.md principle 9).

A Typer command (a function with a ``typer.Option``/``typer.Argument`` default) is measured from its
docstring on: its parameter list is the declarative CLI (one option per entry, with help text), not
logic to read at once; its body is held to the same limit.

Usage: ``python tools/sizes.py [ROOT] [--max-module 400] [--max-function 60]``; exits 1 when any is over.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def _is_typer_default(node: ast.expr | None) -> bool:
    """``typer.Option(...)`` / ``typer.Argument(...)`` (or ``Option(...)`` / ``Argument(...)``)."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in ("Option", "Argument")


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function, decorators excluded; a Typer command's parameter list is not counted."""
    end = node.end_lineno or node.lineno
    defaults = [*node.args.defaults, *node.args.kw_defaults]
    if any(_is_typer_default(d) for d in defaults):
        return end - node.body[0].lineno + 1
    return end - node.lineno + 1


def oversized(root: Path, max_module: int, max_function: int) -> tuple[list[str], list[str]]:
    """``(modules, functions)`` over the limits, as ``"path: N lines"`` / ``"path:line name: N lines"``."""
    modules, functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n > max_module:
            modules.append(f"{path}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = function_length(node)
                if length > max_function:
                    functions.append(f"{path}:{node.lineno} {node.name}: {length} lines")
    return modules, functions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", nargs="?", default="src")
    parser.add_argument("--max-module", type=int, default=400)
    parser.add_argument("--max-function", type=int, default=60)
    args = parser.parse_args()
    modules, functions = oversized(Path(args.root), args.max_module, args.max_function)
    for line in modules + functions:
        print(line)
    over = f"{len(modules)} module(s) over {args.max_module} lines"
    print(f"{over}, {len(functions)} function(s) over {args.max_function}")
    return 1 if modules or functions else 0


if __name__ == "__main__":
    sys.exit(main())
