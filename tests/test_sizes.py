"""tools/sizes.py (DESIGN.md principle 9): how it measures, and src/ within its limits."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _sizes(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("medxfer_tools_sizes", repo_root / "tools" / "sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function(name: str, params: int, body: int, typer_default: bool) -> str:
    default = "typer.Option(0, help='x')" if typer_default else "0"
    lines = [f"def {name}("]
    lines += [f"    p{i}: int = {default}," for i in range(params)]
    lines += [") -> None:", '    """Doc."""']
    lines += [f"    x{i} = {i}" for i in range(body - 1)]
    return "\n".join(lines) + "\n\n\n"


def test_typer_parameter_list_is_not_counted_but_its_body_is(repo_root: Path, tmp_path: Path) -> None:
    sizes = _sizes(repo_root)
    code = "import typer\n\n\n"
    code += _function("long_options_short_body", params=50, body=30, typer_default=True)
    code += _function("long_options_long_body", params=50, body=61, typer_default=True)
    code += _function("plain_long_signature", params=50, body=30, typer_default=False)
    code += _function("plain_short", params=3, body=20, typer_default=False)
    (tmp_path / "m.py").write_text(code)
    modules, functions = sizes.oversized(tmp_path, max_module=10_000, max_function=60)
    assert modules == []
    names = sorted(line.split(" ")[1].rstrip(":") for line in functions)
    assert names == ["long_options_long_body", "plain_long_signature"]
    assert any("long_options_long_body: 61 lines" in line for line in functions)


def test_module_over_the_limit_is_reported(repo_root: Path, tmp_path: Path) -> None:
    sizes = _sizes(repo_root)
    (tmp_path / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "ok.py").write_text("x = 1\n" * 400)
    modules, _ = sizes.oversized(tmp_path, max_module=400, max_function=60)
    assert modules == [f"{tmp_path / 'big.py'}: 401 lines"]


def test_src_has_no_module_over_400_lines_and_no_function_over_60(repo_root: Path) -> None:
    modules, functions = _sizes(repo_root).oversized(repo_root / "src", 400, 60)
    assert modules == [] and functions == [], "\n".join(modules + functions)
