"""Inference on the real backbones users get by default, not only the random tiny CNN: predictions,
ONNX parity, batch independence (BatchNorm in eval mode) and Grad-CAM that finds a planted answer.

EfficientNet-Lite0 and MobileNetV2 carry their packaged ImageNet weights (offline); one model has a
single sigmoid output. Inputs are small (96 px; 192 px for Grad-CAM) to keep the tests cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from inference_helpers import CLASSES

from medxfer.data.images import read_image
from medxfer.inference.export import export_run
from medxfer.inference.predictor import Predictor
from medxfer.models.backbones import build_model, get_spec
from medxfer.runs import ModelInfo, NetworkSpec, save_model

MODELS = {  # run name -> (backbone, output)
    "efficientnet_lite0": ("efficientnet_lite0", "softmax"),
    "mobilenet_v2": ("mobilenet_v2", "softmax"),
    "efficientnet_lite0-sigmoid": ("efficientnet_lite0", "sigmoid"),
}


def save_real_run(run: Path, model: torch.nn.Module, backbone: str, output: str, size: int) -> Path:
    """A run folder for ``model`` with the preprocessing of its packaged weights."""
    _, mean, std = get_spec(backbone).preprocess("packaged")
    info = ModelInfo(
        class_names=list(CLASSES),
        network=NetworkSpec(backbone=backbone, weights="packaged"),
        input_size=size,
        mean=tuple(mean),
        std=tuple(std),
        output=output,
    )
    save_model(run, model.eval(), info)
    return run


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("real")
    runs = {}
    for name, (backbone, output) in MODELS.items():
        torch.manual_seed(0)
        model = build_model(backbone, len(CLASSES), weights="packaged", output=output)
        runs[name] = save_real_run(root / name, model, backbone, output, 96)
    return runs


@pytest.mark.parametrize("name", list(MODELS))
def test_real_backbone_predicts_real_xrays(real_runs, name: str, kermany_paths: list[Path]) -> None:
    run = real_runs[name]
    images = [read_image(p) for p in kermany_paths]
    torch_p = Predictor(run)
    probs = torch_p.predict_arrays(images, batch_size=6)
    assert probs.shape == (6, 2) and np.allclose(probs.sum(axis=1), 1.0)
    one_by_one = np.concatenate([torch_p.predict_arrays([img]) for img in images])
    np.testing.assert_allclose(one_by_one, probs, atol=1e-5)  # eval mode: no batch statistics
    assert np.ptp(probs[:, 1]) > 1e-4  # the network sees the images: outputs differ between them
    if MODELS[name][1] == "sigmoid":
        model = torch_p.model
        assert model.head[-1].out_features == 1
        with torch.no_grad():
            logit = model(torch_p._inputs([torch_p.prepare(i) for i in images], None))[:, 0].double().numpy()
        np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-logit)), atol=1e-6)


def test_onnx_parity_on_efficientnet_with_sigmoid_output(real_runs, kermany_paths: list[Path]) -> None:
    """The default backbone through ONNX (one export: it is the slow part), sigmoid head included."""
    run = real_runs["efficientnet_lite0-sigmoid"]
    images = [read_image(p) for p in kermany_paths]
    result = export_run(run, "onnx", check_images=images)
    assert result.path.is_file()
    probs = Predictor(run).predict_arrays(images, batch_size=6)
    onnx_probs = Predictor(run, engine="onnx").predict_arrays(images, batch_size=4)
    assert onnx_probs.shape == (6, 2)
    np.testing.assert_allclose(onnx_probs, probs, atol=1e-4, rtol=0)


def plant(image: np.ndarray, corner: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """A bright 40 px square in the top-left or bottom-right quarter (random place in it with ``rng``)."""
    out = image.copy()
    h, w = out.shape[:2]
    r, c = (rng.integers(10, h // 2 - 50, 2) if rng is not None else (30, 30)) if corner == "tl" else (0, 0)
    if corner == "br":
        r, c = (
            h // 2 + (rng.integers(10, h // 2 - 50, 2) if rng is not None else np.array([30, 30]))
        ).tolist()
    out[r : r + 40, c : c + 40] = 255
    return out


def test_gradcam_on_efficientnet_finds_the_planted_square(kermany_paths: list[Path], tmp_path: Path) -> None:
    """A head fitted on packaged EfficientNet-Lite0 features to detect a bright square: Grad-CAM of
    'square' peaks in the quarter where the square is, for either placement."""
    from sklearn.linear_model import LogisticRegression

    from medxfer.data.transforms import batch_input

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 2, weights="packaged").eval()
    run = save_real_run(tmp_path / "cam", model, "efficientnet_lite0", "softmax", 192)
    info = Predictor(run).info
    rng = np.random.default_rng(0)
    xrays = [read_image(p) for p in kermany_paths]
    plain = [x for x in xrays for _ in range(2)]
    squares = [plant(x, corner, rng) for x in xrays for corner in ("tl", "br")]
    with torch.no_grad():
        emb = model.embed(batch_input(plain + squares, info)).numpy()
    y = np.r_[np.zeros(len(plain)), np.ones(len(squares))]
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(emb, y)
    assert probe.score(emb, y) == 1.0
    linear = model.head[-1]
    with torch.no_grad():  # logits [0, w.x + b]: class 1 ("pneumonia" here) means "square"
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[1] = torch.from_numpy(probe.coef_[0]).float()
        linear.bias[1] = float(probe.intercept_[0])
    save_model(run, model.eval(), info)

    predictor = Predictor(run)
    for corner in ("tl", "br"):
        for xray in xrays[:2]:
            cam = predictor.cam(plant(xray, corner), target_class=1)
            assert cam.shape == (192, 192)
            half = 96
            quarters = {"tl": cam[:half, :half].mean(), "br": cam[half:, half:].mean()}
            other = "br" if corner == "tl" else "tl"
            assert quarters[corner] > quarters[other], (corner, quarters)
            r, c = np.unravel_index(cam.argmax(), cam.shape)
            assert (r < half and c < half) if corner == "tl" else (r >= half and c >= half), (corner, r, c)
