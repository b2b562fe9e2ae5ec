"""A run trained with ``model.preprocess: clahe`` records it; train, predict and export see one pixel path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES

import medxfer
from medxfer.data.cache import _key
from medxfer.data.contrast import clahe
from medxfer.data.images import read_image
from medxfer.data.transforms import normalise, prepare_pixels
from medxfer.inference.export import export_run
from medxfer.inference.predictor import Predictor


@pytest.fixture(scope="module")
def clahe_run(api_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny run trained with CLAHE, and the image cache it filled."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDXFER_CACHE", str(cache))
    try:
        run = medxfer.train(
            None,
            out=tmp_path_factory.mktemp("runs") / "clahe",
            data=[f"folder:{api_data}"],
            progress=False,
            overrides={**TINY_OVERRIDES, "data.val": 0.25, "model.preprocess": "clahe"},
        )
    finally:
        mp.undo()
    return run.path, cache


def test_training_decodes_with_clahe_and_records_it(clahe_run: tuple[Path, Path], api_data: Path) -> None:
    run, cache = clahe_run
    info = json.loads((run / "model.json").read_text())
    assert info["preprocess"] == "clahe"
    files = sorted(api_data.rglob("*.png"))
    keys = {p.stem for p in cache.rglob("*.npy")}
    assert {_key(f.read_bytes(), 32, "gray", [], "clahe") for f in files} <= keys  # every image, with CLAHE
    assert not {_key(f.read_bytes(), 32, "gray", [], "none") for f in files} & keys  # none without


def test_predict_applies_clahe_as_by_hand(clahe_run: tuple[Path, Path], api_data: Path) -> None:
    run, _ = clahe_run
    images = [read_image(p) for p in sorted(api_data.rglob("*.png"))[:6]]
    predictor = Predictor(run)
    by_hand = torch.stack([normalise(clahe(prepare_pixels(i, 32, "gray")), predictor.info) for i in images])
    with torch.no_grad():
        expected = predictor.model.predict_proba(by_hand).double().numpy()
    np.testing.assert_allclose(predictor.predict_arrays(images), expected, atol=1e-6)
    result = export_run(run, "onnx", check_images=images)
    onnx = Predictor(run, engine="onnx").predict_arrays(images)  # the graph takes prepared pixels
    assert result.max_abs_diff < 1e-4 and np.abs(onnx - expected).max() < 1e-4
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "preprocess": "none"}))
    try:
        assert np.abs(Predictor(run).predict_arrays(images) - expected).max() > 1e-3  # it mattered
    finally:
        (run / "model.json").write_text(json.dumps(info))


def test_an_unknown_preprocess_is_refused_naming_the_key() -> None:
    from medxfer.config import ConfigError

    with pytest.raises(ConfigError, match=r"model.preprocess='gamma'; valid: none, equalize, clahe"):
        medxfer.make_config(overrides={"model.preprocess": "gamma"})
