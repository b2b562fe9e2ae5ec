"""`medxfer predict` with a run whose head is a classical classifier on frozen features."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medxfer.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from tiny import make_folder_dataset  # noqa: E402


def test_predict_uses_a_classical_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    data = make_folder_dataset(tmp_path / "data", per_class=20, size=48)
    runner = CliRunner()
    feats = tmp_path / "f.npz"
    res = runner.invoke(
        app,
        ["features", "--backbone", "efficientnet_lite0", "--weights", "packaged", "--input-size", "64",
         "--data", str(data), "--out", str(feats)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = tmp_path / "classical"
    res = runner.invoke(
        app, ["classical", "--features", str(feats), "--classifiers", "logreg", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    preds = tmp_path / "preds.csv"
    res = runner.invoke(app, ["predict", str(out), str(data), "--out", str(preds)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 40 and all(r["error"] == "" for r in rows)
    truth = [Path(r["path"]).parent.name for r in rows]
    predicted = [r["label"] if "label" in r else r["predicted"] for r in rows]
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(rows)
    assert accuracy >= 0.9  # the training images themselves, through the whole image path
    cam = runner.invoke(
        app, ["predict", str(out), str(data), "--out", str(tmp_path / "p2.csv"), "--cam", str(tmp_path)]
    )
    assert cam.exit_code != 0 and "Grad-CAM" in cam.output
