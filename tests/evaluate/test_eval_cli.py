"""CLI: medxfer evaluate / explain / compare on a tiny run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.runs import read_model_info

runner = CliRunner()


def _splits(folder: Path, run: Path) -> Path:
    from medxfer.data.datasets import load_datasets

    df = load_datasets([str(folder)]).table
    df["split"] = ["val" if i % 2 else "test" for i in range(len(df))]
    path = run / "splits.csv"
    df[["path", "label_name", "patient_id", "source", "split"]].to_csv(path, index=False)
    return path


def test_evaluate_cli_default_splits_and_threshold(tiny_folder: Path, tiny_run: Path) -> None:
    _splits(tiny_folder, tiny_run)
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(tiny_run),
            "--data",
            str(tiny_folder),
            "--n-boot",
            "20",
            "--worst",
            "2",
            "--choose-threshold",
            "youden",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "10 images, 10 patients" in res.output and "ROC AUC" in res.output and "report.html" in res.output
    assert read_model_info(tiny_run).threshold_method == "youden"
    saved = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())
    assert saved["threshold"] == pytest.approx(read_model_info(tiny_run).threshold)


def test_evaluate_cli_errors(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--n-boot", "10"])
    assert (
        res.exit_code == 0 and "every image): 20 images, 0 seen in training" in res.output
    )  # no splits.csv: nothing internal
    res = runner.invoke(app, ["evaluate", str(tmp_path), "--data", str(tiny_folder)])
    assert res.exit_code == 2 and "not a medxfer run folder" in res.output
    _splits(tiny_folder, tiny_run)
    res = runner.invoke(app, ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--split", "train"])
    assert res.exit_code == 2 and "splits present: test, val" in res.output


def test_explain_cli(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    imgs = sorted((tiny_folder / "pneumonia").glob("*.png"))[:2]
    out = tmp_path / "cams"
    res = runner.invoke(app, ["explain", str(tiny_run), *map(str, imgs), "--out", str(out), "--class", "all"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i.stem}_gradcam_{c}.png" for i in imgs for c in ("normal", "pneumonia")]
    from PIL import Image

    assert Image.open(out / names[0]).size == (40, 40) and Image.open(out / names[0]).mode == "RGB"
    res = runner.invoke(app, ["explain", str(tiny_run), str(imgs[0]), "--out", str(out), "--class", "all"])
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, ["explain", str(tiny_run), str(imgs[0]), "--out", str(out), "--class", "covid"])
    assert res.exit_code == 2 and "valid: normal, pneumonia, all" in res.output
    res = runner.invoke(app, ["explain", str(tiny_run), str(imgs[0]), "--out", str(tmp_path / "one")])
    assert res.exit_code == 0 and len(list((tmp_path / "one").iterdir())) == 1


def test_compare_cli(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    table = load_datasets([str(tiny_folder)])
    table.table["split"] = ["val" if i % 2 else "test" for i in range(len(table))]
    other = tmp_path / "run2"
    shutil.copytree(tiny_run, other)
    (other / "train_summary.json").write_text(
        json.dumps({"seconds": 12.3, "images_per_second": 45.6, "params": 1234567})
    )
    for run in (tiny_run, other):
        evaluate_run(run, table, split="test", worst=0, n_boot=20)
    evaluate_run(other, table, split="val", worst=0, n_boot=20)
    out = tmp_path / "cmp.csv"
    res = runner.invoke(app, ["compare", str(tiny_run), str(other), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df["run"]) == ["run", "run2"]
    assert df.loc[1, "params (M)"] == pytest.approx(1.23) and df.loc[1, "images/s"] == pytest.approx(45.6)
    assert df.loc[0, "params (M)"] > 0  # counted from model.safetensors without train_summary.json
    assert {"val AUC", "test AUC", "test acc"} <= set(df.columns)
    assert pd.isna(df.loc[0, "val AUC"]) and df.loc[1, "val AUC low"] <= df.loc[1, "val AUC"] <= 1
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    assert "| run | backbone |" in res.output
    res = runner.invoke(app, ["compare", str(tiny_run), "--out", str(tmp_path / "cmp.xlsx")])
    assert res.exit_code == 2 and ".md, .csv or .html" in res.output
    html = tmp_path / "cmp.html"
    assert runner.invoke(app, ["compare", str(tiny_run), "--out", str(html)]).exit_code == 0
    assert "<table>" in html.read_text()


def test_evaluate_internal_notes_unlisted_images_and_split_default(tiny_folder: Path, tiny_run: Path) -> None:
    import shutil

    _splits(tiny_folder, tiny_run)  # every image in val or test
    shutil.copy(tiny_folder / "normal" / "normal_00.png", tiny_folder / "normal" / "added_later.png")
    res = runner.invoke(app, ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--n-boot", "10"])
    assert res.exit_code == 0, res.output
    assert "internal (test split of the run): 10 images; 1 images of this data are in no split" in res.output
    res = runner.invoke(
        app, ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--split", "all", "--n-boot", "10"]
    )
    assert res.exit_code == 0 and "internal (all split of the run): 20 images" in res.output
