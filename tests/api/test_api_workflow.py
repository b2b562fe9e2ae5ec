"""The Python API and the CLI share one workflow: the same images scored, the same training schedule."""

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


def _real_folder(shared_data: Path, root: Path, start: int, count: int) -> Path:
    """``normal/`` and ``pneumonia/`` with ``count`` real Kermany X-rays each, from index ``start``."""
    src = shared_data / "kermany" / "train"
    for name, folder in (("normal", "NORMAL"), ("pneumonia", "PNEUMONIA")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / folder).glob("*.jpeg"))[start : start + count]:
            shutil.copy(f, root / name / f.name)
    return root


@pytest.fixture(scope="module")
def real_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> medxfer.Run:
    root = tmp_path_factory.mktemp("wf")
    own = _real_folder(shared_data, root / "own", 0, 12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDXFER_CACHE", str(root / "cache"))
        return medxfer.train(
            None,
            out=root / "run",
            data=[f"folder:{own}"],
            backbone="custom_cnn",
            epochs=1,
            progress=False,
            log=None,
            overrides={"model.input_size": 32, "train.threads": 1, "train.batch_size": 8, "data.val": 0.25},
        )


def test_training_copies_are_left_out_through_the_api_and_the_cli(
    real_run: medxfer.Run, shared_data: Path, tmp_path: Path
) -> None:
    """Done-when of issue 21: 4 training copies among 10 images -> 6 scored images, both ways."""
    listed = pd.read_csv(real_run.path / "splits.csv")
    seen = listed[listed["split"].isin(["train", "val"])]["path"].tolist()[:4]
    ext = _real_folder(shared_data, tmp_path / "ext", 200, 3)  # 6 images the run never saw
    for i, path in enumerate(seen):  # + 4 copies of its training images under other names
        shutil.copy(path, ext / Path(path).parent.name / f"copy-{i}.jpeg")
    logged: list[str] = []
    ev = real_run.evaluate(f"folder:{ext}", name="api", n_boot=20, worst=0, log=logged.append)
    assert ev.metrics["n_images"] == 6 and ev.metrics["set"]["kind"] == "external"
    assert sorted(Path(k["path"]).name for k in ev.excluded) == [f"copy-{i}.jpeg" for i in range(4)]
    assert {k["match"] for k in ev.excluded} == {"same bytes"}
    assert any("warning: 4 image(s)" in line for line in logged)
    assert ev.generalisation is not None and "6 images, 4 seen in training" in ev.description
    args = ["evaluate", str(real_run.path), "--data", f"folder:{ext}", "--name", "cli"]
    res = CliRunner().invoke(app, [*args, "--n-boot", "20", "--worst", "0"])
    assert res.exit_code == 0, res.output
    assert "6 images, 4 seen in training (excluded from the score)" in res.output
    api = pd.read_csv(real_run.path / "eval" / "api" / "predictions.csv")
    cli = pd.read_csv(real_run.path / "eval" / "cli" / "predictions.csv")
    assert len(api) == 6 and api.equals(cli)


def test_run_evaluate_defaults_to_the_runs_own_split_as_the_cli(real_run: medxfer.Run) -> None:
    ev = real_run.evaluate(n_boot=20, worst=0, log=lambda m: None)  # no test split: val, as the CLI
    listed = pd.read_csv(real_run.path / "splits.csv")
    assert ev.metrics["n_images"] == int((listed["split"] == "val").sum()) and ev.excluded == []
    assert ev.description.startswith("internal (val split of the run)") and ev.generalisation is None
    with pytest.raises(ValueError, match="split 'tset': valid: train, val, test, all"):
        real_run.evaluate(split="tset")


def test_api_train_without_weights_trains_all_layers_as_the_cli(tmp_path: Path) -> None:
    """``medxfer.train(weights="none")`` == ``medxfer train --weights none``: one all-layers stage."""
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    notes: list[str] = []
    common = {"model.input_size": 32, "train.threads": 1, "data.val": 0.25}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
        run = medxfer.train(
            None,
            tmp_path / "api",
            data=[f"folder:{data}"],
            backbone="custom_cnn",
            weights="none",
            progress=False,
            log=notes.append,
            overrides=common,
        )
        args = ["train", "--data", f"folder:{data}", "--weights", "none", "--backbone", "custom_cnn"]
        args += [x for k, v in common.items() for x in ("--set", f"{k}={v}")]
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cli"), "--quiet"])
    assert res.exit_code == 0, res.output
    api_cfg = yaml.safe_load((run.path / "config.yaml").read_text())
    cli_cfg = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert [(s["name"], s["trainable"], s["epochs"]) for s in api_cfg["stages"]] == [("scratch", "all", 4)]
    assert api_cfg["stages"] == cli_cfg["stages"] and api_cfg["model"] == cli_cfg["model"]
    assert any("all layers train in every epoch" in n for n in notes)


def test_another_backbone_starts_from_its_own_default_weights(recipe_paths: Path) -> None:
    from medxfer.config import load_config

    said: list[str] = []
    cfg = medxfer.make_config("kermany-binary", backbone="custom_cnn", log=said.append)
    assert cfg.model.backbone == "custom_cnn" and cfg.model.weights == "none"  # custom_cnn's own default
    assert cfg.stages == load_config("kermany-binary").stages  # a recipe's own stages: kept, and warned
    assert len(said) == 1 and said[0].startswith("warning: model.weights=none")
    assert medxfer.make_config(None, backbone="resnet18", log=None).model.weights != "none"


def test_tune_options_are_checked_the_same_way_by_the_api_and_the_cli(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--pruner 'bogus'; valid: median, hyperband, none"):
        medxfer.tune(None, 1, pruner="bogus", out=tmp_path / "t", log=lambda m: None)
    with pytest.raises(ValueError, match="--features is for --fast mode only"):
        medxfer.tune(None, 1, features=tmp_path / "f.npz", out=tmp_path / "t", log=lambda m: None)
    res = CliRunner().invoke(app, ["tune", "--pruner", "bogus", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "--pruner 'bogus'; valid: median, hyperband, none" in res.output
    assert not (tmp_path / "t").exists()
