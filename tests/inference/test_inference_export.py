"""ONNX / TorchScript export: parity with PyTorch on real X-rays, dynamic batch, loud failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.images import read_image
from medxfer.inference.export import ExportError, export_run
from medxfer.inference.predictor import Predictor


@pytest.fixture(scope="module")
def onnx_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, kermany_paths: list[Path]) -> Path:
    """A copy of the tiny run exported to ONNX through the CLI, self-checked on real X-rays."""
    run = tmp_path_factory.mktemp("onnx") / "run"
    shutil.copytree(tiny_run, run)
    result = CliRunner().invoke(
        app, ["export", str(run), "--format", "onnx", "--check-images", str(kermany_paths[0].parent)]
    )
    assert result.exit_code == 0, result.stderr
    assert "self-check on 19 inputs (16 real)" in result.stderr
    return run


def test_onnx_matches_torch_on_real_xrays(onnx_run: Path, kermany_paths: list[Path]) -> None:
    import onnx

    graph = onnx.load(str(onnx_run / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["probabilities"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic (dynamic) batch size
    images = [read_image(p) for p in kermany_paths]
    torch_probs = Predictor(onnx_run, engine="torch").predict_arrays(images, batch_size=4)
    onnx_probs = Predictor(onnx_run, engine="onnx").predict_arrays(images, batch_size=4)
    assert onnx_probs.shape == (6, 2)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_probs.sum(axis=1), 1.0, atol=1e-5)


def test_cli_predict_with_onnx_engine(onnx_run: Path, kermany_paths: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(
        app, ["predict", str(onnx_run), *map(str, kermany_paths), "--engine", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 1 + len(kermany_paths)


def test_export_refuses_to_overwrite(onnx_run: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(onnx_run), "--format", "onnx"])
    assert result.exit_code == 2 and "already exists" in result.stderr


def test_torchscript_export_parity(tiny_run: Path, tmp_path: Path, kermany_paths: list[Path]) -> None:
    import torch

    images = [read_image(p) for p in kermany_paths[:3]]
    res = export_run(tiny_run, "torchscript", out=tmp_path / "m.ts", check_images=images)
    assert res.path.is_file() and res.max_abs_diff <= 1e-4 and res.n_checked == 6
    umask = os.umask(0)
    os.umask(umask)
    assert res.path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    loaded = torch.jit.load(str(res.path))
    from medxfer.data.transforms import batch_input

    x = batch_input(images, Predictor(tiny_run).info)
    ref = Predictor(tiny_run).model.predict_proba(x)
    torch.testing.assert_close(loaded(x), ref, atol=1e-4, rtol=0)


def test_failed_self_check_leaves_no_file(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export_run(tiny_run, "onnx", out=out, tolerance=-1.0)  # nothing can pass a negative tolerance
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="choose one of"):
        export_run(tiny_run, "tflite", out=out)


def test_local_calibration_applies_to_both_engines(
    onnx_run: Path, kermany_paths: list[Path], tmp_path: Path
) -> None:
    """A temperature stored by `evaluate --calibrate-on` changes torch and ONNX predictions alike."""
    import json

    from medxfer.evaluate.temperature import apply_temperature

    run = Path(shutil.copytree(onnx_run, tmp_path / "calibrated"))
    images = [read_image(p) for p in kermany_paths]
    raw = Predictor(run, engine="onnx").predict_arrays(images, batch_size=4)
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "temperature": 0.25}))
    for engine in ("torch", "onnx"):
        probs = Predictor(run, engine=engine).predict_arrays(images, batch_size=4)
        np.testing.assert_allclose(probs, apply_temperature(raw, 0.25), atol=1e-4, rtol=0)
    assert not np.allclose(apply_temperature(raw, 0.25), raw, atol=1e-3)
