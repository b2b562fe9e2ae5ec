"""compare states the split of every number and never mixes splits (issue 14 finding 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medxfer.cli import app

cli = CliRunner()


def _two_runs(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """run: a test evaluation; run2: no test evaluation, only an external one and a val one named 'test2'."""
    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    table = load_datasets([str(tiny_folder)])
    table.table["split"] = ["val" if i % 2 else "test" for i in range(len(table))]
    other = tmp_path / "run2"
    shutil.copytree(tiny_run, other)
    evaluate_run(tiny_run, table, split="test", worst=0, n_boot=20)
    about = {"kind": "external", "specs": ["x"], "split": None, "scope": "every image", "description": "ext"}
    evaluate_run(other, table, split=None, name="external-x", about=about, worst=0, n_boot=20)
    evaluate_run(other, table, split="val", name="test2", worst=0, n_boot=20)
    return tiny_run, other


def test_bar_chart_never_takes_another_split(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    from medxfer.evaluate.compare import bar_values, run_row

    a, b = _two_runs(tiny_folder, tiny_run, tmp_path)
    split, cis = bar_values([run_row(a), run_row(b)], "test", "roc_auc")
    assert split == "test" and cis[0]["value"] is not None and cis[1] == {}  # not run2's external AUC


def test_columns_name_their_split_and_csv_is_numeric(
    tiny_folder: Path, tiny_run: Path, tmp_path: Path
) -> None:
    a, b = _two_runs(tiny_folder, tiny_run, tmp_path)
    out = tmp_path / "cmp.csv"
    res = cli.invoke(app, ["compare", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert {
        "test AUC",
        "test AUC low",
        "test AUC high",
        "external-x [external] AUC",
        "test2 [val] acc",
    } <= set(df)
    assert df["test AUC"].dtype == float and df.loc[0, "test AUC low"] <= df.loc[0, "test AUC"]
    assert pd.isna(df.loc[1, "test AUC"]) and pd.isna(df.loc[0, "external-x [external] AUC"])
    assert "test2 [val] AUC" in res.output and "external-x [external] AUC" in res.output


def test_same_name_different_splits_is_refused(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    a, b = _two_runs(tiny_folder, tiny_run, tmp_path)
    table = load_datasets([str(tiny_folder)])
    table.table["split"] = "val"
    evaluate_run(b, table, split="val", name="test", worst=0, n_boot=20)  # a "test" folder holding val
    res = cli.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "c.md")])
    assert res.exit_code == 2 and "not comparable" in res.output
    md = cli.invoke(app, ["compare", str(a), str(b)]).output
    assert "test [val] AUC" in md and "| test AUC |" in md


def test_compare_evaluation_folders_gives_generalisation(
    tiny_folder: Path, tiny_run: Path, tmp_path: Path
) -> None:
    a, b = _two_runs(tiny_folder, tiny_run, tmp_path)
    out = tmp_path / "gen.csv"
    res = cli.invoke(
        app,
        [
            "compare",
            str(b / "eval" / "test2"),
            str(b / "eval" / "external-x"),
            "--out",
            str(out),
            "--n-boot",
            "20",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df["set"]) == ["test2", "external-x"] and list(df["kind"]) == ["internal", "external"]
    # the same images: no drop
    assert df.loc[1, "roc_auc_drop"] == pytest.approx(0.0, abs=1e-12) and pd.isna(df.loc[0, "roc_auc_drop"])
    assert "HINDSIGHT" in res.output
    mixed = [str(a / "eval" / "test"), str(b / "eval" / "test2")]
    meta = json.loads((a / "eval" / "test" / "metrics.json").read_text())
    (a / "eval" / "test" / "metrics.json").write_text(json.dumps({**meta, "temperature": 0.5}))
    res = cli.invoke(app, ["compare", *mixed, "--n-boot", "10"])
    assert res.exit_code == 2 and "different decision rules or calibrations" in res.output
    res = cli.invoke(app, ["compare", str(a), str(b / "eval" / "test2")])
    assert res.exit_code == 2 and "not both" in res.output
    assert json.loads((b / "eval" / "external-x" / "metrics.json").read_text())["split"] == "external"
