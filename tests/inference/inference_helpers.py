"""Helpers shared by the inference tests (imported as ``inference_helpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ["normal", "pneumonia"]
METRICS = {"auc": 0.912, "balanced_accuracy": 0.85, "sensitivity": 0.9}


def make_run(run_dir: Path, input_size: int = 64, seed: int = 0, **info_kwargs: object) -> Path:
    """A run folder with a randomly initialised ``custom_cnn`` (tiny input) and its model.json."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(seed)
    model = build_model("custom_cnn", num_classes=len(CLASSES), weights="none")
    with torch.no_grad():  # non-trivial BatchNorm statistics so eval mode differs from identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    info = ModelInfo(
        class_names=list(CLASSES),
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=input_size,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        metrics=dict(METRICS),
        **info_kwargs,  # type: ignore[arg-type]
    )
    save_model(run_dir, model.eval(), info)
    return run_dir


def gray_image(seed: int, size: int = 80) -> np.ndarray:
    """A deterministic synthetic gray image (uint8, H x W)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size + 8), dtype=np.uint8)


def write_png(path: Path, arr: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path
