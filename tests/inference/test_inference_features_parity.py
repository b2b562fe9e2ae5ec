"""Features of a run see the pixels its Predictor sees: ModelInfo is the one preprocessing record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_helpers import CLASSES, gray_image, make_run, write_png


def test_run_features_equal_the_predictor_embedding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from medxfer.data.datasets import load_datasets
    from medxfer.data.images import read_image
    from medxfer.data.transforms import batch_input
    from medxfer.features.extract import extract_features, run_meta
    from medxfer.inference.predictor import Predictor

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    run = make_run(tmp_path / "run", input_size=40, mask_boxes=[[0.0, 0.0, 0.25, 0.25]])
    for i in range(4):
        write_png(tmp_path / "data" / CLASSES[i % 2] / f"x{i}.png", gray_image(i, size=50))
    table = load_datasets([str(tmp_path / "data")])
    fs = extract_features(table, run_meta(run), use_cache=False, progress=False)
    predictor = Predictor(run)
    images = [read_image(p) for p in table.table["path"]]
    with torch.no_grad():
        expected = predictor.model.embed(batch_input(images, predictor.info)).numpy()
    assert fs.meta["mask_boxes"] == [[0.0, 0.0, 0.25, 0.25]] and fs.meta["input_size"] == 40
    np.testing.assert_allclose(fs.features, expected, atol=1e-5)
