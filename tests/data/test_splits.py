"""Splits: grouped by patient, stratified by class, given splits kept, deterministic, saved/applied."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medxfer.data.datasets import DatasetError, ImageTable, load_datasets
from medxfer.data.splits import (
    SplitError,
    apply_splits,
    assign_splits,
    save_splits,
    split_summary,
)


def _table(rows: list[tuple[str, int, str, str]], class_names: list[str]) -> ImageTable:
    """rows: (path, label, patient_id, split)."""
    frame = pd.DataFrame(rows, columns=["path", "label", "patient_id", "split"])
    frame["label_name"] = [class_names[i] for i in frame["label"]]
    frame["source"] = "s"
    frame["view"] = ""
    return ImageTable(
        class_names, frame[["path", "label", "label_name", "patient_id", "source", "view", "split"]]
    )


def _synthetic(patients_per_class: int = 20, images_per_patient: int = 3) -> ImageTable:
    rows = []
    for label in (0, 1):
        for p in range(patients_per_class):
            for i in range(images_per_patient):
                rows.append((f"/d/c{label}/p{p}_{i}.png", label, f"c{label}p{p}", ""))
    return _table(rows, ["a", "b"])


def _shared_patients(frame: pd.DataFrame, first: str, second: str) -> set[str]:
    return set(frame.loc[frame["split"] == first, "patient_id"]) & set(
        frame.loc[frame["split"] == second, "patient_id"]
    )


def test_grouped_stratified_exact_counts() -> None:
    result = assign_splits(_synthetic(), val=0.2, test=0.1, seed=0).table
    assert _shared_patients(result, "train", "val") == set()
    assert _shared_patients(result, "train", "test") == set()
    assert _shared_patients(result, "val", "test") == set()
    # 20 patients x 3 images per class: 60 images -> val 12 (4 patients), test 6 (2 patients)
    counts = pd.crosstab(result["split"], result["label_name"])
    assert counts.loc["val"].tolist() == [12, 12]
    assert counts.loc["test"].tolist() == [6, 6]
    assert counts.loc["train"].tolist() == [42, 42]


def test_deterministic_for_seed() -> None:
    data = _synthetic()
    first = assign_splits(data, seed=7).table["split"].tolist()
    assert assign_splits(data, seed=7).table["split"].tolist() == first
    assert assign_splits(data, seed=8).table["split"].tolist() != first


def test_given_splits_kept_and_patients_follow() -> None:
    rows = [(f"/d/{i}.png", i % 2, f"p{i}", "") for i in range(20)]
    rows += [("/d/t0.png", 0, "pt", "test"), ("/d/t1.png", 1, "pt2", "test"), ("/d/t2.png", 0, "p0", "test")]
    data = _table(rows, ["a", "b"])
    result = assign_splits(data, val=0.2, test=0.3, seed=0).table
    # test given -> not drawn again; p0's pool image follows its test image
    assert sorted(result.loc[result["split"] == "test", "path"]) == [
        "/d/0.png",
        "/d/t0.png",
        "/d/t1.png",
        "/d/t2.png",
    ]
    assert (result.loc[result["split"] == "val"].shape[0]) == 4  # 20% of 9 + 10 pool images per class
    assert set(result["split"]) == {"train", "val", "test"}


def test_too_few_patients_refused() -> None:
    rows = [("/d/1.png", 0, "p1", ""), ("/d/2.png", 0, "p1", ""), ("/d/3.png", 1, "p2", "")]
    rows += [(f"/d/x{i}.png", 1, f"q{i}", "") for i in range(5)]
    with pytest.raises(SplitError, match="class 'a' has only 1 patient\\(s\\) to split"):
        assign_splits(_table(rows, ["a", "b"]), val=0.2)
    with pytest.raises(SplitError, match="sum to less than 1"):
        assign_splits(_table(rows, ["a", "b"]), val=0.6, test=0.4)


def test_save_and_apply_roundtrip(tmp_path: Path) -> None:
    data = assign_splits(_synthetic(), val=0.25, seed=1)
    save_splits(data, tmp_path / "splits.csv")
    saved = pd.read_csv(tmp_path / "splits.csv")
    assert list(saved.columns) == ["path", "label_name", "patient_id", "source", "split"]
    fresh = _synthetic()
    fresh.table.loc[0, "path"] = "/elsewhere/new.png"
    applied = apply_splits(fresh, tmp_path / "splits.csv").table
    assert applied.loc[0, "split"] == ""
    assert applied["split"].iloc[1:].tolist() == data.table["split"].iloc[1:].tolist()


def test_apply_splits_errors(tmp_path: Path) -> None:
    data = _synthetic()
    with pytest.raises(FileNotFoundError):
        apply_splits(data, tmp_path / "none.csv")
    (tmp_path / "a.csv").write_text("path,fold\n/d/x.png,1\n")
    with pytest.raises(DatasetError, match="missing column\\(s\\) split"):
        apply_splits(data, tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("path,split\n/d/c0/p0_0.png,training\n")
    with pytest.raises(DatasetError, match="unknown split value"):
        apply_splits(data, tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("path,split\n/other/x.png,train\n")
    with pytest.raises(DatasetError, match="none of its 1 paths matches the 120 images"):
        apply_splits(data, tmp_path / "c.csv")


def test_split_summary() -> None:
    summary = split_summary(assign_splits(_synthetic(), val=0.2, seed=0))
    assert summary.index.tolist() == ["train", "val"]
    assert summary.loc["val", "images"] == 24 and summary.loc["val", "patients"] == 8
    assert summary.loc["val", "a %"] == 50.0


def test_real_kermany_split(shared_data: Path) -> None:
    data = load_datasets([f"kermany:{shared_data / 'kermany'}"])
    for seed in (0, 1, 2):
        result = assign_splits(data, val=0.2, seed=seed).table
        assert _shared_patients(result, "train", "val") == set()
        shares = pd.crosstab(result["split"], result["label_name"], normalize="index") * 100
        assert (shares.loc["train"] - shares.loc["val"]).abs().max() < 2.0
        val_fraction = (result["split"] == "val").mean()
        assert 0.19 < val_fraction < 0.21


def test_split_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medxfer.cli import app

    for label in ("a", "b"):
        for i in range(10):
            (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / label / f"{i}.png").write_bytes(b"x")
    out = tmp_path / "splits.csv"
    args = ["split", str(tmp_path / "data"), "--out", str(out), "--val", "0.2", "--seed", "3"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "2 (50.0%)" in first.output  # val: 2 images of each class
    saved = pd.read_csv(out)
    assert len(saved) == 20 and saved["split"].value_counts().to_dict() == {"train": 16, "val": 4}
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert runner.invoke(app, [*args, "--force", "--val", "0.5"]).exit_code == 0
    assert pd.read_csv(out)["split"].value_counts().to_dict() == {"train": 10, "val": 10}
    bad_args = ["split", str(tmp_path / "data"), "--out", str(tmp_path / "x.csv"), "--val", "0.6"]
    bad = runner.invoke(app, [*bad_args, "--test", "0.5"])
    assert bad.exit_code == 2 and not (tmp_path / "x.csv").exists()
