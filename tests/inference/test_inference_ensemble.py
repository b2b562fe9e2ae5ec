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
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(seed)
    model = build_model("custom_cnn", 2, head=head, output=output)
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none", head=head),
        input_size=64,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        output=output,
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


def _sized_run(path: Path, size: int, mean: float, std: float, seed: int, channels: str = "gray") -> Path:
    """An untrained ``custom_cnn`` run at its own input size and normalisation."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(seed)
    model = build_model("custom_cnn", 2)
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=size,
        mean=(mean,) * 3,
        std=(std,) * 3,
        channels=channels,
    )
    save_model(path, model.eval(), info)
    return path


def test_members_at_other_sizes_are_one_onnx_graph(kermany_paths: list[Path], tmp_path: Path) -> None:
    members = [_sized_run(tmp_path / "a", 64, 0.5, 0.25, 1), _sized_run(tmp_path / "b", 80, 0.4, 0.3, 2)]
    result = build_ensemble(members, tmp_path / "ens")
    info = json.loads((result.path / "model.json").read_text())
    assert (info["input_size"], info["mean"], info["std"]) == (80, [0.5] * 3, [0.25] * 3)  # largest; first's
    assert [(m["input_size"], m["mean"][0], m["std"][0]) for m in info["members"]] == [
        (64, 0.5, 0.25),
        (80, 0.4, 0.3),
    ]
    assert any("input: 80 px" in n and "custom_cnn at 64 px" in n for n in result.notes)
    images = [read_image(p) for p in kermany_paths]
    ens = Predictor(result.path).predict_arrays(images)
    own = np.mean([Predictor(m).predict_arrays(images) for m in members], axis=0)
    assert np.abs(ens - own).max() < 0.02  # member a sees the image resized twice (decoded -> 80 -> 64)
    export = export_run(result.path, "onnx", check_images=images)
    assert export.max_abs_diff < 1e-4
    np.testing.assert_allclose(Predictor(result.path, engine="onnx").predict_arrays(images), ens, atol=1e-4)
    cam = Predictor(result.path).cam(images[0])
    assert cam.shape == (80, 80) and cam.max() == pytest.approx(1.0)


def _flat(data: dict) -> dict:
    """``model.json`` as runs wrote it before ``network``: backbone/weights/head at the top level (an
    ensemble's: its first member's, next to ``members``)."""
    network = data.pop("network", None) or {k: data["members"][0][k] for k in ("backbone", "weights", "head")}
    return {**data, **network}


def test_old_flat_model_json_loads_and_predicts_the_same(kermany_paths: list[Path], tmp_path: Path) -> None:
    import shutil

    members = [_sized_run(tmp_path / "a", 64, 0.5, 0.25, 1), _sized_run(tmp_path / "b", 80, 0.4, 0.3, 2)]
    ens = build_ensemble(members, tmp_path / "ens").path
    images = [read_image(p) for p in kermany_paths[:3]]
    for run in (members[0], ens):
        old = shutil.copytree(run, tmp_path / "old" / run.name)
        data = json.loads((run / "model.json").read_text())
        (old / "model.json").write_text(json.dumps(_flat(data)))
        assert "backbone" in json.loads((old / "model.json").read_text())
        np.testing.assert_array_equal(
            Predictor(old).predict_arrays(images), Predictor(run).predict_arrays(images)
        )
        assert Predictor(old).info == Predictor(run).info


def test_members_with_other_channels_are_refused_naming_the_field(tmp_path: Path) -> None:
    from medxfer.inference.ensemble import EnsembleError

    members = [
        _sized_run(tmp_path / "a", 64, 0.5, 0.25, 1),
        _sized_run(tmp_path / "b", 64, 0.5, 0.25, 2, "rgb"),
    ]
    with pytest.raises(EnsembleError, match="field 'channels' is \"rgb\" in .*b/model.json"):
        build_ensemble(members, tmp_path / "ens")
    assert not (tmp_path / "ens").exists()


REAL_MEMBERS = (
    "efficientnet_lite0",
    "efficientnet_lite2",
    "mobilenet_v2",
)  # 224, 260, 224 (ImageNet mean/std)


def test_lite0_lite2_and_mobilenet_at_their_own_sizes_on_real_xrays(
    shared_data: Path, tmp_path: Path
) -> None:
    """The packaged networks (random heads) at their native sizes: the ensemble's members see the image
    resized twice, so they differ from their own runs by about what a one-pixel shift changes (measured:
    Lite0 0.045, MobileNetV2 0.026, the mean 0.022 at most on these 16 X-rays); Lite2 (260) is exact."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, save_model

    runs = []
    for seed, backbone in enumerate(REAL_MEMBERS):
        torch.manual_seed(seed)
        info = ModelInfo.for_backbone(backbone, "packaged", ["normal", "pneumonia"])
        save_model(tmp_path / backbone, build_model(backbone, 2, weights="packaged").eval(), info)
        runs.append(tmp_path / backbone)
    ens = build_ensemble(runs, tmp_path / "ens").path
    info = json.loads((ens / "model.json").read_text())
    assert info["input_size"] == 260 and [m["input_size"] for m in info["members"]] == [224, 260, 224]
    root = shared_data / "kermany" / "train"
    images = [read_image(p) for c in ("NORMAL", "PNEUMONIA") for p in sorted((root / c).glob("*.jpeg"))[:8]]
    predictor = Predictor(ens)
    with torch.no_grad():
        inside = [
            m.predict_proba(x).double().numpy()
            for m, x in predictor.model.member_inputs(
                predictor._inputs([predictor.prepare(i) for i in images], None)
            )
        ]
    own = [Predictor(r).predict_arrays(images) for r in runs]
    gaps = [float(np.abs(a - b).max()) for a, b in zip(inside, own, strict=True)]
    assert gaps[1] < 1e-6 and max(gaps) < 0.06, gaps
    assert np.abs(predictor.predict_arrays(images) - np.mean(own, axis=0)).max() < 0.03
