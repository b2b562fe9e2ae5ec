"""crossval --fast on real chest X-rays: the two small adult COVID collections (61 images), by source and
by patient (EfficientNet-Lite0 packaged weights; embeddings come from the shared feature cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner


def _config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "cv.yaml"
    cfg.write_text(
        "name: covid-small\ndata:\n"
        f"  specs: ['actualmed:{data}/covid/actualmed', 'figure1:{data}/covid/figure1']\n"
        "  task: covid-vs-normal\n"
        "model: {backbone: efficientnet_lite0, weights: packaged}\n"
        "train: {batch_size: 16, imbalance: class_weights}\n"
        "stages:\n  - {name: head, epochs: 20, trainable: head, lr: 3.0e-3, augment: none}\n"
    )
    return cfg


@pytest.mark.parametrize("by", ["source", "patient"])
def test_crossval_fast_real_covid_collections(shared_data: Path, tmp_path: Path, by: str) -> None:
    from medxfer.cli import app

    out = tmp_path / "cv"
    args = ["crossval", "--config", str(_config(tmp_path, shared_data)), "--out", str(out), "--by", by]
    res = CliRunner().invoke(app, [*args, "--folds", "3", "--fast", "--n-boot", "50", "--threads", "2"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "crossval.json").read_text())
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 61 and preds[["p_normal", "p_covid"]].notna().all().all()
    if by == "source":
        assert {f["fold"]: f["n_images"] for f in summary["folds"]} == {"actualmed": 33, "figure1": 28}
        assert {f["fold"]: f["per_class"]["normal"] for f in summary["folds"]} == {
            "actualmed": 12,
            "figure1": 2,
        }
        assert (preds["fold"] == preds["source"]).all()
    else:
        assert (preds.groupby("patient_id")["fold"].nunique() == 1).all()
        assert sorted(preds["fold"].unique()) == ["fold1", "fold2", "fold3"]
    md = (out / "crossval.md").read_text()
    assert "## Spread over folds" in md and "Pooled out-of-fold (61 images" in md
