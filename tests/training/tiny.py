"""Helpers for training tests: a tiny two-class folder dataset (a bright disc vs a bright bar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_folder_dataset(root: Path, per_class: int = 12, size: int = 40, seed: int = 0) -> Path:
    """root/{disc,bar}/p<ID>_<n>.png, two images per patient, noise background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for name in ("bar", "disc"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size)).astype(np.uint8)
            cx, cy = rng.integers(12, size - 12, 2)
            if name == "disc":
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < 30] = 230
            else:
                img[cy - 2 : cy + 2, 6 : size - 6] = 230
            Image.fromarray(img).save(root / name / f"{name}{i // 2}_{i % 2}.png")
    return root


def tiny_config(data: Path, **train):  # noqa: ANN003, ANN201
    from medxfer.config import from_dict

    return from_dict(
        {
            "data": {"specs": [f"folder:{data}"], "val": 0.25, "seed": 0},
            "model": {"backbone": "custom_cnn", "weights": "none", "input_size": 32},
            "train": {"batch_size": 8, "augment": "light", "threads": 1, **train},
            "stages": [
                {"name": "head", "epochs": 1, "trainable": "head", "lr": 1e-2, "augment": "none"},
                {"name": "ft", "epochs": 2, "trainable": "all", "lr": 3e-3},
            ],
        }
    )
