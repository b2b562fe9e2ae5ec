"""Shift stress test: exact perturbation maths, the table/summary, and `evaluate --stress` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medxfer.evaluate import stress_report as R
from medxfer.inference import stress as S


def _ramp(shape: tuple[int, ...] = (40, 60)) -> np.ndarray:
    h, w = shape[:2]
    img = (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)
    return np.stack([img] * 3, axis=-1) if len(shape) == 3 else img


@pytest.mark.parametrize("shift", S.list_shifts())
@pytest.mark.parametrize("shape", [(224, 240), (224, 240, 3)])
def test_every_shift_keeps_shape_dtype_and_changes_the_image(shift: str, shape: tuple[int, ...]) -> None:
    img = np.random.default_rng(1).integers(0, 256, shape[:2] if len(shape) == 2 else shape, dtype=np.uint8)
    img = (img // 2 + _ramp(shape) // 2).astype(np.uint8)  # texture + a gradient
    prev = None
    for sev in S.SEVERITIES:
        out = S.apply_shift(img, shift, sev, np.random.default_rng(0))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert not np.array_equal(out, img), (shift, sev)
        if prev is not None:
            # a higher severity moves the image further from the original
            dist = np.abs(out.astype(int) - img).mean()
            assert dist >= np.abs(prev.astype(int) - img).mean() - 0.5, (shift, sev)
        prev = out


def test_exposure_gamma_contrast_formulas() -> None:
    img = np.array([[0, 51, 100, 200, 255]], np.uint8)
    assert S.apply_shift(img, "exposure", 1).tolist() == [[0, 61, 120, 240, 255]]  # x1.2, clipped
    assert S.apply_shift(img, "exposure", 3).tolist() == [[0, 87, 170, 255, 255]]  # x1.7
    g = S.apply_shift(img, "gamma", 2)  # 255 * (x/255)^2
    assert g.tolist() == [[0, 10, 39, 157, 255]]
    c = S.apply_shift(np.array([[100, 200]], np.uint8), "contrast", 2)  # mean 150, x0.5
    assert c.tolist() == [[125, 175]]


def test_noise_is_seeded_and_has_the_stated_sd() -> None:
    img = np.full((200, 200), 128, np.uint8)
    a = S.apply_shift(img, "noise", 2, np.random.default_rng(3))
    b = S.apply_shift(img, "noise", 2, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.astype(float).std() == pytest.approx(10.0, rel=0.05)
    assert a.astype(float).mean() == pytest.approx(128.0, abs=0.2)


def test_geometry_and_resolution_shifts() -> None:
    flat = np.full((56, 56), 77, np.uint8)
    for shift in ("blur", "zoom", "lowres"):
        assert np.abs(S.apply_shift(flat, shift, 3).astype(int) - 77).max() <= 1, shift
    j = S.apply_shift(flat, "jpeg", 3)  # quality 7: the DC level is quantised coarsely, but stays flat
    assert j.std() == 0 and abs(int(j[0, 0]) - 77) <= 8
    # zoom keeps the centre: a centred bright square grows by 1/0.8 at severity 2
    img = np.zeros((100, 100), np.uint8)
    img[40:60, 40:60] = 255
    z = S.apply_shift(img, "zoom", 2)
    assert (z[:, 50] > 127).sum() == pytest.approx(25, abs=1)
    # rotation by 10 degrees fills the corners with black, keeps the centre
    r = S.apply_shift(np.full((100, 100), 200, np.uint8), "rotation", 2)
    assert r[0, 0] == 0 and r[50, 50] == 200
    # low resolution removes a one-pixel checkerboard (all detail above the new Nyquist)
    checker = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    lo = S.apply_shift(checker, "lowres", 1)
    assert np.abs(lo.astype(int) - 127).max() <= 2

    # blur scales with image size: a 448 px image gets twice the sigma of a 224 px one
    def edge_width(side: int) -> int:
        step = np.zeros((side, side), np.uint8)
        step[:, side // 2 :] = 255
        row = S.apply_shift(step, "blur", 3)[side // 2].astype(int)
        return int(((row > 5) & (row < 250)).sum())

    assert edge_width(448) == pytest.approx(2 * edge_width(224), abs=2)


def test_bad_shift_and_severity_are_named() -> None:
    with pytest.raises(ValueError, match="unknown shift 'fog'.*exposure"):
        S.apply_shift(_ramp(), "fog", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        S.apply_shift(_ramp(), "blur", 4)


class _FakePredictor:
    """P(class 1) = mean intensity of the image / 255: AUC reacts to exposure, not to zoom of flat images."""

    class_names = ["normal", "pneumonia"]
    threshold = 0.5

    def __init__(self) -> None:
        self.calls = 0

    def predict_arrays(self, images, batch_size=32, tta=False):  # noqa: ANN001, ANN201
        self.calls += 1
        p = np.array([img.mean() / 255.0 for img in images])
        return np.stack([1 - p, p], axis=1)


def test_stress_test_rows_and_summary() -> None:
    images = [np.full((32, 32), v, np.uint8) for v in (40, 60, 80, 100, 150, 170, 190, 210)]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    fake = _FakePredictor()
    result = S.stress_test(fake, images, y, shifts=["exposure", "contrast"])  # type: ignore[arg-type]
    rows = result["rows"]
    assert fake.calls == 1 + 2 * 3
    assert [(r["shift"], r["severity"]) for r in rows][:2] == [("none", 0), ("exposure", 1)]
    assert rows[0]["roc_auc"] == 1.0 and rows[0]["accuracy"] == 1.0
    # exposure x1.7 pushes every image's score up: ranking intact (AUC 1) but normals cross 0.5
    ex3 = next(r for r in rows if r["shift"] == "exposure" and r["severity"] == 3)
    assert ex3["roc_auc"] == 1.0 and ex3["accuracy"] == pytest.approx(6 / 8)
    # contrast around each (flat) image's own mean changes nothing
    assert all(r["accuracy"] == 1.0 for r in rows if r["shift"] == "contrast")
    s = result["summary"]
    assert s["n_shifted_sets"] == 6 and s["stress_score"] == 1.0 and s["clean_auc"] == 1.0
    assert s["mean_accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in rows[1:]]))
    text = R.summary_text(s)
    assert "stress score 1.000" in text and f"mean accuracy {s['mean_accuracy']:.3f} (clean 1.000)" in text


def test_stress_summary_worst_and_mean() -> None:
    rows = [
        {"shift": "none", "severity": 0, "parameter": "clean", "roc_auc": 0.95, "accuracy": 0.9},
        {"shift": "blur", "severity": 1, "parameter": "a", "roc_auc": 0.9, "accuracy": 0.8},
        {"shift": "jpeg", "severity": 3, "parameter": "b", "roc_auc": 0.7, "accuracy": 0.6},
    ]
    s = R.stress_summary(rows)
    assert s["stress_score"] == pytest.approx(0.8) and s["worst"]["shift"] == "jpeg"
    assert s["mean_accuracy"] == pytest.approx(0.7)


def test_evaluate_stress_cli_writes_table_plot_and_report(tiny_folder: Path, tiny_run: Path) -> None:
    from medxfer.cli import app

    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tiny_run),
            "--data",
            str(tiny_folder),
            "--split",
            "all",
            "--n-boot",
            "10",
            "--worst",
            "0",
            "--stress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "stress score" in res.output
    out = tiny_run / "eval" / "external-data"  # the run has no splits.csv: the folder is external data
    table = pd.read_csv(out / "stress.csv")
    assert len(table) == 1 + len(S.list_shifts()) * 3
    assert list(table.columns) == R.STRESS_COLUMNS
    assert (out / "stress.png").stat().st_size > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["stress"]["n_shifted_sets"] == 27
    assert saved["stress"]["clean_auc"] == pytest.approx(saved["metrics"]["roc_auc"], abs=1e-6)
    html = (out / "report.html").read_text()
    assert "id='stress'" in html and "Stress test under acquisition shifts" in html
    assert "stress.png" in (out / "report.md").read_text()
