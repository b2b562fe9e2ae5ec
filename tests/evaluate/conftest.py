"""Fixtures for evaluation tests: a tiny labelled image folder and a run with an untrained custom CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """``normal/`` and ``pneumonia/``, 10 gray 40x40 PNGs each; pneumonia images have a bright square."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for label in ("normal", "pneumonia"):
        (root / label).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 80, (40, 40), dtype=np.uint8)
            if label == "pneumonia":
                img[5:20, 5:20] = 230
            Image.fromarray(img).save(root / label / f"{label}_{i:02d}.png")
    return root


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """A run folder (model.json + model.safetensors) of an untrained custom_cnn, 32 px input, binary."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model("custom_cnn", num_classes=2)
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    run = tmp_path / "run"
    run.mkdir()
    save_model(run, model, info)
    (run / "config.yaml").write_text("data:\n  task: null\nmodel:\n  backbone: custom_cnn\n")
    return run
