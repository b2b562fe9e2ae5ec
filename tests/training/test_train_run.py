"""Training end to end on a tiny folder dataset: outputs, refusal to clobber, DDP (resume: test_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny import tiny_config

from medxfer.config import save_config
from medxfer.training.runner import RunExistsError, train_run


def test_train_writes_a_self_describing_run(tiny_data: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(tiny_data), tmp_path / "run", progress=False)
    run = result.run_dir
    for name in ("config.yaml", "splits.csv", "model.json", "model.safetensors", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert any((run / "tb").rglob("events.out.tfevents*"))
    info = json.loads((run / "model.json").read_text())
    assert info["class_names"] == ["bar", "disc"] and info["input_size"] == 32 and info["channels"] == "gray"
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,stage,train_loss,val_loss") and len(rows) == 1 + 3
    assert [r.split(",")[1] for r in rows[1:]] == ["head", "ft", "ft"]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["params"] > 0 and summary["images_per_second"] > 0
    with pytest.raises(RunExistsError, match="--resume"):
        train_run(tiny_config(tiny_data), run, progress=False)


def test_keep_last_saves_the_final_epoch_not_the_best(tiny_data: Path, tmp_path: Path) -> None:
    """``train.keep: last``: model.safetensors holds the weights after the last epoch (last.ckpt), and
    the summary says so, whichever epoch scored best on val."""
    import torch
    from safetensors.torch import load_file

    result = train_run(tiny_config(tiny_data, keep="last"), tmp_path / "run", progress=False)
    run = result.run_dir
    saved = load_file(run / "model.safetensors")
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert saved and all(torch.equal(v, last[f"model.{k}"]) for k, v in saved.items())
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["keep"] == "last" and summary["best_epoch"] == summary["epochs"] == 3


def test_resume_never_retrains_a_finished_model_without_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    """A run folder whose checkpoints are gone (copied, cleaned up) is not silently trained again."""
    import shutil

    run = train_run(tiny_config(tiny_data), tmp_path / "run", progress=False).run_dir
    shutil.rmtree(run / "checkpoints")
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RunExistsError, match="no checkpoints/last.ckpt to resume"):
        train_run(None, run, resume=True, progress=False)
    assert (run / "model.safetensors").read_bytes() == before


def test_ddp_two_processes_on_cpu(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_data, accelerator="cpu", devices=2, strategy="ddp")
    cfg_file = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_file)
    out = tmp_path / "ddp"
    # Lightning's DDP launcher re-runs the command line for rank 1: use the console script.
    medxfer = str(Path(sys.executable).with_name("medxfer"))
    proc = subprocess.run(
        [medxfer, "train", "-c", str(cfg_file), "--out", str(out), "--verbose"],  # Lightning's DDP lines
        capture_output=True,
        text=True,
        env={**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in log
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert (out / "model.safetensors").is_file()
    assert len(list(out.glob("model*.safetensors"))) == 1
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["devices"] == 2


def test_embedding_bar_follows_progress(capsys: pytest.CaptureFixture[str]) -> None:
    """The head stage's "embed (frozen backbone)" bar is off with ``--quiet`` (progress=False)."""
    import numpy as np

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec
    from medxfer.training.data import RunData

    model = build_model("custom_cnn", num_classes=2, weights="none")
    info = ModelInfo(
        class_names=["a", "b"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=16,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )
    data = (np.zeros((300, 16, 16), np.uint8), np.zeros(300, np.int64))
    for progress in (False, True):
        run_data = RunData(
            data, data, info, 8, 0, False, 0, lambda e: ("embeddings", None, 0), progress=progress
        )
        run_data.model = model
        assert run_data._embeddings(0)[0].shape[0] == 300
        assert ("embed (frozen backbone)" in capsys.readouterr().err) is progress
