"""An ensemble run on real X-rays: members with other heads, softmax and sigmoid, ONNX parity, temperature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medxfer.data.images import read_image
from medxfer.evaluate.temperature import apply_temperature
from medxfer.inference.ensemble import build_ensemble
from medxfer.inference.export import export_run
from medxfer.inference.predictor import Predictor


def _run(path: Path, head: dict, output: str, seed: int) -> Path:
    """A run folder of an untrained ``custom_cnn`` (64 px, binary) with the given head and output kind."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, save_model

    torch.manual_seed(seed)
    model = build_model("custom_cnn", 2, head=head, output=output)
    info = ModelInfo(
        ["normal", "pneumonia"], "custom_cnn", "none", 64, (0.5,) * 3, (0.25,) * 3, head=head, output=output
    )
    save_model(path, model.eval(), info)
    return path


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_members_with_different_heads_on_real_xrays(
    output: str, kermany_paths: list[Path], tmp_path: Path
) -> None:
    mlp = {"kind": "mlp", "hidden": 16, "dropout": 0.0}
    members = [_run(tmp_path / "a", {"kind": "linear"}, output, 1), _run(tmp_path / "b", mlp, output, 2)]
    ens = build_ensemble(members, tmp_path / "ens").path
    assert [m["head"]["kind"] for m in json.loads((ens / "model.json").read_text())["members"]] == [
        "linear",
        "mlp",
    ]
    images = [read_image(p) for p in kermany_paths]
    mean = np.mean([Predictor(m).predict_arrays(images) for m in members], axis=0)
    np.testing.assert_allclose(Predictor(ens).predict_arrays(images), mean, atol=1e-5)

    result = export_run(ens, "onnx", check_images=images)
    assert result.max_abs_diff < 1e-4 and result.n_checked == len(images) + 3
    np.testing.assert_allclose(Predictor(ens, engine="onnx").predict_arrays(images), mean, atol=1e-4)

    info = json.loads((ens / "model.json").read_text())
    (ens / "model.json").write_text(json.dumps({**info, "temperature": 2.0}))  # local calibration on top
    np.testing.assert_allclose(Predictor(ens).predict_arrays(images), apply_temperature(mean, 2.0), atol=1e-5)
