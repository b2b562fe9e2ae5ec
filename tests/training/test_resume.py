"""A killed run resumes to exactly the run it would have been: kill -9 at a known epoch (see stall.py),
``medxfer train --resume``, and compare weights, metrics.csv and model.json with an uninterrupted run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from stall import resume, run_and_kill, run_to_end
from tiny import make_folder_dataset, tiny_config

from medxfer.config import save_config


def ckpt_epochs_done(run: Path) -> int:
    """Epochs held by ``run/checkpoints/last.ckpt``."""
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return int(ckpt["epoch"]) + 1


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    ja, jb = json.loads((a / "model.json").read_text()), json.loads((b / "model.json").read_text())
    assert ja == jb


@pytest.fixture(scope="module")
def tiny_resume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(config file, uninterrupted run, env): head 2 epochs on cached embeddings, then 3 epochs of all."""
    root = tmp_path_factory.mktemp("resume")
    env = {**os.environ, "MEDXFER_CACHE": str(root / "cache")}
    cfg = tiny_config(make_folder_dataset(root / "data", per_class=24, size=32))
    cfg.stages[0].epochs, cfg.stages[1].epochs = 2, 3
    cfg_file = root / "cfg.yaml"
    save_config(cfg, cfg_file)
    full = root / "full"
    run_to_end(cfg_file, full, env)
    return cfg_file, full, env


@pytest.mark.parametrize(
    ("stall_at", "message"),
    [
        (1, "1 epoch(s) done; continuing at epoch 2/5, stage 1 'head' (epoch 2/2"),
        (3, "3 epoch(s) done; continuing at epoch 4/5, stage 2 'ft' (epoch 2/3"),
    ],
    ids=["crosses-stage-boundary", "mid-second-stage"],
)
def test_killed_run_resumes_to_the_uninterrupted_run(tiny_resume, tmp_path: Path, stall_at, message) -> None:
    cfg_file, full, env = tiny_resume
    run = tmp_path / "killed"
    run_and_kill(cfg_file, run, stall_at=stall_at, env=env)
    done = ckpt_epochs_done(run)
    assert done == stall_at  # the kill landed after the checkpoint of the epoch before
    assert not (run / "model.json").exists()
    out = resume(run, env)
    assert_same_run(full, run)
    assert f"resumed from {run / 'checkpoints' / 'last.ckpt'}: {message}" in out


def test_resume_continues_from_the_checkpoints_weights(tiny_resume, tmp_path: Path) -> None:
    """The resumed run starts from ``last.ckpt``'s weights, not from a seeded restart (which would give
    the uninterrupted run): an offset planted in the checkpoint is still in the saved model."""
    from medxfer.config import load_config

    cfg_file, _, env = tiny_resume
    cfg = load_config(cfg_file)
    cfg.train.keep = "last"  # the saved model is the last epoch's, trained on from the checkpoint
    save_config(cfg, tmp_path / "last.yaml")
    run = tmp_path / "tampered"
    run_and_kill(tmp_path / "last.yaml", run, stall_at=3, env=env)
    path = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    key = next(k for k, v in ckpt["state_dict"].items() if k.endswith("weight") and v.ndim == 4)
    planted = ckpt["state_dict"][key] + 0.5
    ckpt["state_dict"][key] = planted
    torch.save(ckpt, path)
    resume(run, env)
    final = load_file(str(run / "model.safetensors"))[key.removeprefix("model.")]
    assert (final - planted).abs().mean().item() < 0.1  # 2 more epochs moved it a little, from there
