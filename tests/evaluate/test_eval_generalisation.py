"""The generalisation table from evaluation folders: values, sources, drops, thresholds (formula-checked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medxfer.evaluate import metrics as M
from medxfer.evaluate.generalisation import generalisation, write_generalisation


def _folder(root: Path, name: str, kind: str, split: str, y, p1, sources, threshold: float = 0.5) -> Path:  # noqa: ANN001
    out = root / name
    out.mkdir(parents=True)
    meta = {
        "class_names": ["normal", "pneumonia"],
        "split": split,
        "threshold": threshold,
        "threshold_method": "default",
        "temperature": 1.0,
        "set": {"kind": kind, "description": f"{kind} {name}"},
    }
    (out / "metrics.json").write_text(json.dumps(meta))
    df = pd.DataFrame(
        {
            "path": [f"/{name}/{i}.png" for i in range(len(y))],
            "patient_id": [f"{name}-p{i // 2}" for i in range(len(y))],
            "source": sources,
            "true": ["pneumonia" if v else "normal" for v in y],
            "pred": "normal",
            "p_normal": 1 - np.asarray(p1),
            "p_pneumonia": p1,
        }
    )
    df.to_csv(out / "predictions.csv", index=False)
    return out


def _case(n: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(shift, 0.25, n), 0.001, 0.999)
    return y, p1


def test_rows_sources_drops_and_thresholds(tmp_path: Path) -> None:
    yv, pv = _case(60, 0, 0.0)
    ye, pe = _case(80, 1, 0.15)  # shifted: more positive calls outside
    sources = ["siteA"] * 50 + ["siteB"] * 30
    val = _folder(tmp_path, "val", "internal", "val", yv, pv, ["own"] * 60)
    ext = _folder(tmp_path, "external-x", "external", "external", ye, pe, sources)
    result = generalisation([ext, val], n_boot=30)
    names = [r["set"] for r in result["rows"]]
    assert names == ["val", "external-x", "external-x / siteA", "external-x / siteB"]
    assert result["reference"] == "val"
    pv2, pe2 = np.stack([1 - pv, pv], 1), np.stack([1 - pe, pe], 1)
    rows = {r["set"]: r for r in result["rows"]}
    assert rows["external-x"]["metrics"]["roc_auc"]["value"] == pytest.approx(M.roc_auc(ye, pe2))
    site_b = np.arange(80) >= 50
    assert rows["external-x / siteB"]["images"] == 30
    assert rows["external-x / siteB"]["metrics"]["roc_auc"]["value"] == pytest.approx(
        M.roc_auc(ye[site_b], pe2[site_b])
    )
    drop = M.roc_auc(yv, pv2) - M.roc_auc(ye, pe2)
    assert rows["external-x"]["roc_auc_drop"] == pytest.approx(drop) and rows["val"]["roc_auc_drop"] is None
    spec = M.classification_metrics(ye, pe2, ["normal", "pneumonia"], 0.5)["per_class"]["pneumonia"][
        "specificity"
    ]
    assert rows["external-x"]["metrics"]["specificity"]["value"] == pytest.approx(spec)
    t_val = M.choose_threshold(yv, pv2, "youden")
    ext_rules = [t for t in result["thresholds"] if t["set"] == "external-x"]
    assert [t["threshold"] for t in ext_rules[:2]] == [0.5, pytest.approx(t_val)]
    assert ext_rules[2]["threshold"] == pytest.approx(M.choose_threshold(ye, pe2, "youden"))
    assert ext_rules[2]["rule"].startswith("HINDSIGHT") and ext_rules[2]["metrics"]["accuracy"]["low"] is None
    acc_val_t = M.accuracy(ye, (pe >= t_val).astype(int))
    assert ext_rules[1]["metrics"]["accuracy"]["value"] == pytest.approx(acc_val_t)


def test_written_files_and_class_mismatch(tmp_path: Path) -> None:
    yv, pv = _case(40, 2, 0.0)
    val = _folder(tmp_path, "val", "internal", "val", yv, pv, ["own"] * 40)
    ext = _folder(tmp_path, "external-x", "external", "external", yv, pv, ["s"] * 40)
    out = write_generalisation([val, ext], tmp_path / "gen", n_boot=20)
    df = pd.read_csv(tmp_path / "gen" / "generalisation.csv")
    assert list(df["set"]) == ["val", "external-x"] and df.loc[1, "roc_auc_drop"] == pytest.approx(0.0)
    assert (df["roc_auc_low"] <= df["roc_auc"]).all() and (df["roc_auc"] <= df["roc_auc_high"]).all()
    html = (tmp_path / "gen" / "report.html").read_text()
    assert "id='generalisation'" in html and "id='thresholds'" in html and "Not for clinical use" in html
    assert (
        Path(out["report"]).is_file()
        and "external external-x" in (tmp_path / "gen" / "report.md").read_text()
    )
    meta = json.loads((ext / "metrics.json").read_text())
    (ext / "metrics.json").write_text(json.dumps({**meta, "class_names": ["a", "b"]}))
    pred = pd.read_csv(ext / "predictions.csv").rename(columns={"p_normal": "p_a", "p_pneumonia": "p_b"})
    pred.assign(true=pred["true"].map({"normal": "a", "pneumonia": "b"})).to_csv(ext / "predictions.csv")
    with pytest.raises(ValueError, match="differ"):
        generalisation([val, ext], n_boot=10)


@pytest.mark.parametrize(
    ("method", "expect_model"),
    [("youden", True), ("sens:0.95", True), ("youden on local calibration (9)", False)],
)
def test_val_chosen_threshold_source(tmp_path: Path, method: str, expect_model: bool) -> None:
    yv, pv = _case(60, 3, 0.0)
    folders = []
    for name, kind, split in (("val", "internal", "val"), ("external-x", "external", "external")):
        folders.append(_folder(tmp_path, name, kind, split, yv, pv, ["s"] * 60, threshold=0.42))
        meta = json.loads((folders[-1] / "metrics.json").read_text())
        (folders[-1] / "metrics.json").write_text(json.dumps({**meta, "threshold_method": method}))
    rules = [t for t in generalisation(folders, n_boot=10)["thresholds"] if t["set"] == "external-x"]
    youden = M.choose_threshold(yv, np.stack([1 - pv, pv], 1), "youden")
    assert rules[1]["threshold"] == pytest.approx(0.42 if expect_model else youden)
