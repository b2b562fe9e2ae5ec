"""Runs are portable: trained with a relative data path, they evaluate from any working directory and
after the run folder moves (its data staying put); runs that stored relative paths still load."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import medxfer
from medxfer.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))  # tests/training/tiny.py
from tiny import make_folder_dataset  # noqa: E402


def _evaluate(run: Path, name: str) -> str:
    res = CliRunner().invoke(app, ["evaluate", str(run), "--name", name, "--n-boot", "10", "--worst", "0"])
    assert res.exit_code == 0, res.output
    assert "internal (val split of the run)" in res.output
    return res.output


@pytest.fixture(scope="module")
def relative_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``medxfer train --data folder:../data --out runs/r`` run from ``ROOT/work``."""
    root = tmp_path_factory.mktemp("portable")
    make_folder_dataset(root / "data", per_class=6)
    (root / "work").mkdir()
    args = ["train", "--data", "folder:../data", "--backbone", "custom_cnn", "--epochs", "1", "--quiet"]
    args += ["--set", "model.input_size=32", "--set", "train.threads=1", "--set", "data.val=0.25"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root / "work")
        mp.setenv("MEDXFER_CACHE", str(root / "cache"))
        res = CliRunner().invoke(app, [*args, "--out", "runs/r"])
    assert res.exit_code == 0, res.output
    return root / "work" / "runs" / "r"


def test_a_run_stores_absolute_data_paths(relative_run: Path) -> None:
    data = relative_run.parents[2] / "data"
    cfg = yaml.safe_load((relative_run / "config.yaml").read_text())
    assert cfg["data"]["specs"] == [f"folder:{data}"]
    listed = pd.read_csv(relative_run / "splits.csv")
    assert all(p.startswith(f"{data}/") for p in listed["path"])


def test_evaluates_from_another_directory_and_after_a_move(
    relative_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _evaluate(relative_run, "elsewhere")
    ev = medxfer.load_run(relative_run).evaluate(n_boot=10, worst=0, log=lambda m: None)
    assert ev.description.startswith("internal (val split of the run)")
    moved = tmp_path / "archive" / "r"
    shutil.copytree(relative_run, moved)
    _evaluate(moved, "moved")
    image = next((relative_run.parents[2] / "data").rglob("*.png"))
    res = CliRunner().invoke(app, ["predict", str(moved), str(image), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output


def test_an_old_run_with_relative_paths_still_loads(
    relative_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths are tried against the working directory, then against the run folder."""
    old = tmp_path / "runs" / "old"
    shutil.copytree(relative_run, old)
    data = relative_run.parents[2] / "data"
    shutil.copytree(data, tmp_path / "data")  # ../../data from the run folder
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["data"]["specs"] = ["folder:../../data"]
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    listed = pd.read_csv(old / "splits.csv")
    listed["path"] = [p.replace(f"{data}/", "../../data/") for p in listed["path"]]
    listed.to_csv(old / "splits.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # ../../data is not there: the run folder's is used
    out = _evaluate(old, "old")
    assert f"{int((listed['split'] == 'val').sum())} images" in out
