"""`medxfer train` defaults a new user meets: a backbone's own weights, a from-scratch schedule, --epochs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from medxfer.cli import app


def test_custom_cnn_trains_from_scratch_with_all_layers(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", f"folder:{tiny_data}", "--backbone", "custom_cnn", "--epochs", "1"]
    args += ["--out", str(out), "--quiet", "--set", "model.input_size=32", "--set", "train.threads=1"]
    args += ["--set", "data.val=0.25"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "all layers train" in result.output
    assert "24 of 24 images have no patient id" in result.output  # folder layout: said, not hidden
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["weights"] == "none"
    assert [(s["trainable"], s["epochs"]) for s in cfg["stages"]] == [("all", 1)]
    check = json.loads((out / "check.json").read_text())
    assert check["num_images"] == 24 and check["settings"]["duplicates"] == "group"
    assert (out / "model.safetensors").is_file()


def test_a_recipe_with_frozen_stages_and_no_weights_warns(tiny_data: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {backbone: custom_cnn, weights: none, input_size: 32}\n"
        "stages: [{name: head, epochs: 0, trainable: head}, {name: ft, epochs: 1, trainable: 'last:1'}]\n"
    )
    out = tmp_path / "run"
    args = ["train", "-c", str(recipe), "--data", f"folder:{tiny_data}", "--out", str(out), "--quiet"]
    args += ["--set", "train.threads=1", "--set", "data.val=0.25", "--set", "data.limit_per_class=4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "starts from random weights" in result.output
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2


def test_quiet_is_quiet_and_tensorboard_gets_hparams_and_lr(tiny_data: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    args = ["train", "--data", f"folder:{tiny_data}", "--backbone", "custom_cnn", "--epochs", "1", "--quiet"]
    args += ["--out", str(out), "--set", "model.input_size=32", "--set", "train.threads=1"]
    proc = subprocess.run(
        [sys.executable, "-c", "from medxfer.cli import app; app()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    for noise in (
        "Tip:",
        "GPU available",
        "deprecated",
        "Warning",
        "limit_train_batches",
        "decode train",
        "it/s",
    ):
        assert noise not in text, noise
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert any(tag.startswith("lr-") for tag in events.Tags()["scalars"]), events.Tags()["scalars"]
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins
    assert b"train.batch_size" in plugins["_hparams_/session_start_info"]


def test_limit_per_class_caps_every_split(tiny_data: Path, tmp_path: Path) -> None:
    import numpy as np
    from tiny import tiny_config

    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import assign_splits
    from medxfer.training.fit import setup

    cfg = tiny_config(tiny_data)
    cfg.data.val, cfg.data.limit_per_class = 0.5, 3
    table = assign_splits(load_datasets(cfg.data.specs), val=0.5, seed=0)
    assert (table.table["split"] == "val").sum() >= 8  # more than the cap in each class
    s = setup(cfg, table)
    assert np.bincount(s.data.train_y).tolist() == [3, 3]
    assert np.bincount(s.data.val_y).tolist() == [3, 3]
