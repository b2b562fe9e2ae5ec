"""evaluate_run / choose_threshold end to end on a tiny run folder (untrained custom CNN, 32 px)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medxfer.data.datasets import load_datasets
from medxfer.evaluate import metrics as M
from medxfer.inference.calibration import choose_threshold
from medxfer.inference.evaluation import evaluate_run
from medxfer.runs import read_model_info


def _table(folder: Path):  # noqa: ANN202
    table = load_datasets([str(folder)])
    df = table.table
    df["split"] = ["val" if i % 2 else "test" for i in range(len(df))]
    df["patient_id"] = [f"pt{i // 2}" for i in range(len(df))]  # two images per patient
    return table


def test_evaluate_run_writes_everything(tiny_folder: Path, tiny_run: Path) -> None:
    (tiny_run / "check.json").write_text(
        json.dumps(
            {
                "warnings": [
                    "class pneumonia comes from one source only",
                    "a probe finds the label from the borders",
                ],
                "shortcut_probe": {"auc": 0.99, "warnings": ["a probe finds the label from the borders"]},
            }
        )
    )
    table = _table(tiny_folder)
    result = evaluate_run(tiny_run, table, split="test", worst=4, n_boot=50)
    out = tiny_run / "eval" / "test"
    assert result["eval_dir"] == str(out)
    for f in (
        "metrics.json",
        "predictions.csv",
        "confusion_matrix.png",
        "roc.png",
        "pr.png",
        "reliability.png",
        "worst.png",
        "report.html",
        "report.md",
    ):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_images"] == 10 and saved["n_patients"] == 10  # each test patient has one test image
    assert saved["threshold"] == 0.5 and "at_0.5" in saved
    assert saved["bootstrap"]["n_boot"] == 50
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == ["path", "patient_id", "source", "true", "pred", "p_normal", "p_pneumonia"]
    assert len(preds) == 10 and np.allclose(preds[["p_normal", "p_pneumonia"]].sum(axis=1), 1, atol=1e-5)
    y = (preds["true"] == "pneumonia").to_numpy().astype(int)
    p = preds[["p_normal", "p_pneumonia"]].to_numpy()
    assert saved["metrics"]["roc_auc"] == pytest.approx(M.roc_auc(y, p), abs=1e-4)
    assert saved["metrics"]["accuracy"] == pytest.approx(np.mean((p[:, 1] >= 0.5) == y))
    ci = saved["ci"]["accuracy"]
    assert ci["low"] <= ci["value"] <= ci["high"]
    html = (out / "report.html").read_text()
    for section in ("summary", "per-class", "figures", "worst", "data", "warnings", "config", "disclaimer"):
        assert f"id='{section}'" in html, section
    assert html.count("data:image/png;base64,") == 5  # cm, roc, pr, reliability, gallery
    assert (
        "Not for clinical use" in html and "one source only" in html and html.count("from the borders") == 1
    )
    assert "<img" in html and 'src="' in html and 'src="worst.png"' not in html
    md = (out / "report.md").read_text()
    assert "![ROC curves](roc.png)" in md and "Not for clinical use" in md
    assert md.count("\n| ") >= 4


def test_curves_copied_and_tta_name(tiny_folder: Path, tiny_run: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tiny_run / "curves.png")
    result = evaluate_run(tiny_run, _table(tiny_folder), split=None, tta=True, worst=0, n_boot=10)
    out = tiny_run / "eval" / "all-tta"
    assert (out / "curves.png").is_file() and not (out / "worst.png").exists()
    assert result["n_images"] == 20 and result["n_patients"] == 10 and result["tta"] is True
    assert result["bootstrap"]["unit"] == "patient"
    assert "no check.json" in (out / "report.md").read_text()


def test_bad_split_names_choices(tiny_folder: Path, tiny_run: Path) -> None:
    with pytest.raises(ValueError, match=r"no images in split 'train'; splits present: test, val"):
        evaluate_run(tiny_run, _table(tiny_folder), split="train")


def test_choose_threshold_writes_model_json(tiny_folder: Path, tiny_run: Path) -> None:
    table = _table(tiny_folder)
    before = (tiny_run / "model.safetensors").read_bytes()
    t = choose_threshold(tiny_run, table.subset("val"), "sens:0.95")
    info = read_model_info(tiny_run)
    assert info.threshold == pytest.approx(t) and info.threshold_method == "sens:0.95"
    assert (tiny_run / "model.safetensors").read_bytes() == before
    result = evaluate_run(tiny_run, table, split="val", worst=0, n_boot=10)
    assert result["threshold"] == pytest.approx(t)
    assert result["metrics"]["per_class"]["pneumonia"]["recall"] >= 0.95  # on the data it was chosen on
    with pytest.raises(ValueError, match="youden"):
        choose_threshold(tiny_run, table.subset("val"), "best")


def test_three_classes_with_a_class_absent(tiny_folder: Path, tmp_path: Path) -> None:
    """Softmax 3-class model, test data has only 2 of the classes: nulls, no crash, no threshold."""
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(1)
    run = tmp_path / "run3"
    info = ModelInfo(
        class_names=["covid", "normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=32,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        output="softmax",
    )
    save_model(run, build_model("custom_cnn", num_classes=3), info)
    table = load_datasets([str(tiny_folder)])
    table.table["split"] = "test"
    result = evaluate_run(run, table, split="test", worst=2, n_boot=20)
    assert result["threshold"] is None and "at_0.5" not in result and result["rule"] == "argmax"
    covid = result["metrics"]["per_class"]["covid"]
    assert covid["support"] == 0 and covid["recall"] is None and covid["roc_auc"] is None
    assert result["ci"]["recall/covid"] == {"value": None, "low": None, "high": None, "n_valid": 0}
    assert len(result["metrics"]["confusion_matrix"]) == 3
    md = (Path(result["eval_dir"]) / "report.md").read_text()
    assert "| covid | 0 |" in md and "n/a" in md
