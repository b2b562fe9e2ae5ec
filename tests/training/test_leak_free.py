"""Leak-free by default: the duplicates policy, train's own check (check.json, cache), refusal of leaks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny import make_folder_dataset, tiny_config

from medxfer.config import load_config
from medxfer.data.datasets import load_datasets
from medxfer.data.leaks import LeakError
from medxfer.data.resolve import checked_split
from medxfer.training.runner import prepare_run_dir, resolve_data, train_run

REPO = Path(__file__).resolve().parents[2]
COVID_RECIPES = ["covid-3class", "covid-4class", "covid-vs-normal"]


def _with_cross_copies(tmp_path: Path) -> Path:
    """The tiny two-class data plus: one disc copied into bar/ (a cross-class copy), one disc twice."""
    data = make_folder_dataset(tmp_path / "data", per_class=16)
    shutil.copy(data / "disc" / "disc0_0.png", data / "bar" / "copy_of_disc.png")
    shutil.copy(data / "disc" / "disc1_0.png", data / "disc" / "zz_same.png")
    return data


def test_policies_group_drop_and_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    data = _with_cross_copies(tmp_path)
    cfg = tiny_config(data)
    table = load_datasets(cfg.data.specs)
    grouped, report = checked_split(table, cfg.data, progress=False)
    assert report.settings["duplicates"] == "group" and not report.settings["dropped"]
    crossing = [g for g in report.duplicates if g["cross_class"]]
    assert crossing and all(len(g["splits"]) == 1 for g in report.duplicates)
    assert report.settings["reused_cached_check"] is False

    cfg.data.duplicates = "drop-cross-class"
    dropped_table, report = checked_split(table, cfg.data, progress=False)
    dropped = {Path(d["path"]).name for d in report.settings["dropped"]}
    assert dropped == {"copy_of_disc.png", "disc0_0.png"}
    assert len(dropped_table) == len(table) - 2 and report.settings["reused_cached_check"] is True
    assert not any(g["cross_class"] for g in report.duplicates)
    assert any(g["paths"] for g in report.duplicates)  # the same-class copy is still grouped


def test_train_refuses_a_split_with_copies_on_both_sides(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    data = _with_cross_copies(tmp_path)
    cfg = tiny_config(data)
    run = tmp_path / "run"
    run.mkdir()
    table = resolve_data(cfg, run, resume=False, progress=False)
    report = json.loads((run / "check.json").read_text())
    assert report["counts"]["per_split"]["val"] > 0 and report["settings"]["duplicates"] == "group"
    assert any("ACROSS CLASSES" in w for w in report["warnings"])
    assert not report["small_images"] and report["settings"]["min_size"] == 32  # the model's input size
    # a hand-made split that puts the two copies of disc1_0 on both sides
    df = pd.read_csv(run / "splits.csv")
    same = df["path"].str.endswith(("disc1_0.png", "zz_same.png"))
    df.loc[same, "split"] = ["train", "val"]
    df.to_csv(tmp_path / "leaky.csv", index=False)
    cfg.data.splits = str(tmp_path / "leaky.csv")
    with pytest.raises(LeakError, match="straddle the splits.*--allow-leaks"):
        train_run(cfg, tmp_path / "run2", progress=False)
    prepare_run_dir(tmp_path / "run2", resume=False, overwrite=False)  # the refusal blocks no retry
    cfg.data.allow_leaks = True
    (tmp_path / "run3").mkdir()
    leaky = resolve_data(cfg, tmp_path / "run3", resume=False, progress=False)
    assert len(leaky) == len(table)
    saved = json.loads((tmp_path / "run3" / "check.json").read_text())
    assert any("ACROSS SPLITS" in w for w in saved["warnings"])


@pytest.mark.parametrize("recipe", COVID_RECIPES)
def test_covid_recipes_split_with_no_duplicates_across_splits(
    recipe: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real data (a fixed subset: every adult collection, every 3rd Radiography/Kermany file)."""
    monkeypatch.setenv("MEDXFER_SHARED_DATA", str(shared_data))
    cfg = load_config(recipe)
    assert cfg.data.duplicates != "keep"
    full = load_datasets(cfg.data.specs, task=cfg.data.task, label_map=cfg.data.label_map)
    df = full.table.sort_values("path").reset_index(drop=True)
    big = df["source"].isin(["kermany", "covid19-radiography"])
    keep = ~big | (df.groupby("source").cumcount() % 3 == 0)
    table = full.with_table(df[keep])
    _, report = checked_split(table, cfg.data, progress=False)
    assert sum(g["cross_split"] for g in report.duplicates) == 0
    assert report.num_images > 1000 and report.duplicates  # the subset does hold copies
    cfg.data.duplicates, cfg.data.allow_leaks = "keep", True  # what the recipes did before
    _, leaky = checked_split(table, cfg.data, progress=False)
    assert sum(g["cross_split"] for g in leaky.duplicates) > 0
