"""crossval: fold assignment, duplicate exclusion, the spread, and `medxfer crossval` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medxfer.data.datasets import ImageTable
from medxfer.tuning.crossval import assign_folds, fold_splits
from medxfer.tuning.crossval_report import spread


def _table(sources: list[str], patients: list[str], labels: list[int]) -> ImageTable:
    df = pd.DataFrame(
        {
            "path": [f"/x/{i}.png" for i in range(len(labels))],
            "label": labels,
            "label_name": [["normal", "covid"][v] for v in labels],
            "patient_id": patients,
            "source": sources,
            "view": "",
            "split": "",
        }
    )
    return ImageTable(["normal", "covid"], df)


def test_leave_source_out_folds_are_the_sources() -> None:
    t = _table(["b", "a", "b", "c", "a", "c"], [f"p{i}" for i in range(6)], [0, 1, 1, 0, 0, 1])
    fold_of, names = assign_folds(t, "source")
    assert names == ["a", "b", "c"]
    assert fold_of.tolist() == [1, 0, 1, 2, 0, 2]
    with pytest.raises(ValueError, match=r"2 or more sources.*\['a'\].*--by patient"):
        assign_folds(_table(["a", "a"], ["p", "q"], [0, 1]), "source")
    with pytest.raises(ValueError, match="--by 'hospital'"):
        assign_folds(t, "hospital")


def test_patient_folds_keep_patients_together_and_stratify() -> None:
    n = 60
    patients = [f"p{i // 3}" for i in range(n)]  # 3 images per patient
    labels = [(i // 3) % 2 for i in range(n)]
    t = _table(["s"] * n, patients, labels)
    fold_of, names = assign_folds(t, "patient", folds=4, seed=1)
    assert names == ["fold1", "fold2", "fold3", "fold4"]
    df = t.table.assign(fold=fold_of)
    assert (df.groupby("patient_id")["fold"].nunique() == 1).all()
    assert sorted(df["fold"].unique()) == [0, 1, 2, 3]
    per_fold = df.groupby("fold")["label"].mean()
    assert per_fold.between(0.3, 0.7).all()  # both classes in every fold
    with pytest.raises(ValueError, match="--folds 1"):
        assign_folds(t, "patient", folds=1)


def test_fold_splits_leave_out_copies_of_held_out_images() -> None:
    # rows 0 (source a) and 3 (source b) are copies: merged into one patient "a:1"
    sources = ["a", "a", "a", "b", "b", "b", "b", "b", "b", "b", "a", "a", "a"]
    patients = ["a:1", "a:2", "a:3", "a:1", "b:1", "b:2", "b:3", "b:4", "b:5", "b:6", "a:4", "a:5", "a:6"]
    labels = [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    t = _table(sources, patients, labels)
    fold_of, names = assign_folds(t, "source")
    ft = fold_splits(t, fold_of, names.index("a"), val=0.3, seed=0)
    split = ft.table["split"].tolist()
    assert split[:3] + split[10:] == ["test"] * 6
    assert split[3] == ""  # copy of a held-out image: never trains this fold's model
    assert set(split[4:10]) == {"train", "val"}
    ft_b = fold_splits(t, fold_of, names.index("b"), val=0.3, seed=0)
    assert ft_b.table["split"].tolist()[0] == ""  # and the other way round
    assert ft_b.table["split"].tolist()[3:10] == ["test"] * 7
    assert fold_splits(t, fold_of, 0, val=0.0, seed=0).table["split"].tolist()[4:10] == ["train"] * 6


def test_spread_mean_sd_min() -> None:
    s = spread([{"roc_auc": 0.9, "accuracy": 0.8}, {"roc_auc": 0.8, "accuracy": 0.6}, {"roc_auc": None}])
    assert s["roc_auc"] == {"mean": 0.85, "sd": pytest.approx(0.070711, abs=1e-6), "min": 0.8, "n": 2}
    assert s["accuracy"]["mean"] == pytest.approx(0.7) and s["accuracy"]["min"] == 0.6


def _csv_dataset(root: Path, seed: int = 0) -> Path:
    """Three sources x 12 patients; covid = a bright disc. Source 'c' images are darker overall."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    rows = []
    for source, base in (("a", 60), ("b", 60), ("c", 30)):
        for i in range(12):
            label = ["normal", "covid"][i % 2]
            img = rng.integers(0, base, (40, 40)).astype(np.uint8)
            if label == "covid":
                cx, cy = rng.integers(12, 28, 2)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < 40] = 230
            path = root / source / f"{source}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
            rows.append({"path": str(path), "label": label, "patient_id": f"{source}{i}", "source": source})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def _config(tmp_path: Path, csv: Path) -> Path:
    cfg = tmp_path / "cv.yaml"
    cfg.write_text(
        f"name: cvtest\ndata:\n  specs: ['csv:{csv}']\n  val: 0.25\n"
        "model: {backbone: custom_cnn, weights: none, input_size: 32}\n"
        "train: {batch_size: 8, threads: 1, augment: none}\n"
        "stages:\n  - {name: head, epochs: 8, trainable: head, lr: 1.0e-2, augment: none}\n"
    )
    return cfg


@pytest.mark.parametrize("fast", [True, False])
def test_crossval_cli_by_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    from medxfer.cli import app

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    csv = _csv_dataset(tmp_path / "data")
    out = tmp_path / "cv"
    args = [
        "crossval",
        "--config",
        str(_config(tmp_path, csv)),
        "--out",
        str(out),
        "--by",
        "source",
        "--n-boot",
        "20",
    ]
    res = CliRunner().invoke(app, args + (["--fast"] if fast else []))
    assert res.exit_code == 0, res.output
    assert "3 folds by source" in res.output
    summary = json.loads((out / "crossval.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["a", "b", "c"]
    assert all(f["n_images"] == 12 and f["n_train"] == (24 if fast else 18) for f in summary["folds"])
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 36 and preds["p_covid"].between(0, 1).all()
    assert (preds.groupby("source")["fold"].first() == pd.Series({"a": "a", "b": "b", "c": "c"})).all()
    # the pooled AUC is the AUC of the out-of-fold predictions themselves
    from medxfer.evaluate.metrics import roc_auc

    y = (preds["true"] == "covid").astype(int).to_numpy()
    proba = preds[["p_normal", "p_covid"]].to_numpy()
    assert summary["pooled"]["roc_auc"] == pytest.approx(roc_auc(y, proba), abs=1e-6)
    aucs = [f["roc_auc"] for f in summary["folds"]]
    assert summary["spread"]["roc_auc"]["min"] == pytest.approx(min(aucs))
    assert summary["spread"]["roc_auc"]["mean"] == pytest.approx(np.mean(aucs), abs=1e-6)
    table = pd.read_csv(out / "crossval.csv")
    assert table["fold"].tolist() == ["a", "b", "c", "mean", "sd", "min", "pooled"]
    assert "| held out |" in (out / "crossval.md").read_text()
    if not fast:  # one run folder per fold, trained by train_run on its splits file
        for name in ("a", "b", "c"):
            splits = pd.read_csv(out / f"fold-{name}" / "splits.csv")
            held = splits[splits["source"] == name]
            assert (held["split"] == "test").all() and (
                splits.loc[splits["source"] != name, "split"] != "test"
            ).all()
        # a second call reuses the trained folds (a killed crossval resumes)
        res2 = CliRunner().invoke(app, args)
        assert res2.exit_code == 0 and "trained already, reusing" in res2.output


def test_crossval_fast_caps_training_rows_like_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``data.limit_per_class`` caps each fold's training rows in --fast mode too (not the held-out fold)."""
    from medxfer.cli import app

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    csv = _csv_dataset(tmp_path / "data")
    out = tmp_path / "cv"
    args = ["crossval", "--config", str(_config(tmp_path, csv)), "--out", str(out), "--by", "source"]
    args += ["--fast", "--n-boot", "10", "--set", "data.limit_per_class=3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    folds = json.loads((out / "crossval.json").read_text())["folds"]
    assert all(f["n_train"] == 6 and f["n_images"] == 12 for f in folds)


def test_crossval_cli_errors(tmp_path: Path) -> None:
    from medxfer.cli import app

    res = CliRunner().invoke(app, ["crossval", "--config", str(tmp_path / "no.yaml"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "config file not found" in res.output
