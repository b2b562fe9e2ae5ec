"""The default backbone (EfficientNet-Lite0, packaged ImageNet weights) learns on real X-rays, its
stages train exactly what they say, evaluation reproduces training's val numbers, and a run killed
before its first checkpoint resumes from the packaged weights (not from random ones)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from stall import resume, run_and_kill
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.config import from_dict, save_config
from medxfer.models.backbones import build_model
from medxfer.training.runner import train_run

# Measured on this subset (seed 0, 96 px): val AUC 0.98 after one head epoch of the 2-epoch stage and
# after fine-tuning, 0.895 after a 1-epoch head stage; random backbone weights (weights: none) reach
# 0.64-0.69. The floors keep a wide margin on both sides.
AUC_FLOOR = 0.88
RESUME_FLOOR = 0.8
UNFROZEN = 2  # fine-tune stage: last:2


def kermany_config(data: Path, stages: list[dict]):  # noqa: ANN201
    return from_dict(
        {
            "data": {"specs": [f"kermany:{data}"], "task": "kermany-binary", "val": 0.25, "seed": 0},
            "model": {"backbone": "efficientnet_lite0", "weights": "packaged", "input_size": 96},
            "train": {
                "batch_size": 32,
                "augment": "none",
                "threads": 2,
                "monitor": "val_auc",
                "max_batches_per_epoch": 3,
            },
            "stages": stages,
        }
    )


HEAD = {"name": "head", "epochs": 2, "trainable": "head", "lr": 3e-3}
FINETUNE = {"name": "ft", "epochs": 1, "trainable": f"last:{UNFROZEN}", "lr": 5e-4, "backbone_lr_mult": 0.3}


@pytest.fixture(scope="module")
def packaged() -> torch.nn.Module:
    """EfficientNet-Lite0 with the packaged weights, as training starts from them."""
    return build_model("efficientnet_lite0", 2, weights="packaged").eval()


@pytest.fixture(scope="module")
def learned(kermany_small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run, checkpoint at the end of the head stage): 2 head epochs + 1 fine-tune epoch."""
    root = tmp_path_factory.mktemp("learn")
    run, head_end = root / "run", root / "head_end.ckpt"

    def snapshot(epoch: int, metrics: dict) -> None:
        # epoch_callback runs before this epoch's checkpoint: at epoch 2, last.ckpt is the head stage's end
        if epoch == 2:
            shutil.copy(run / "checkpoints" / "last.ckpt", head_end)

    train_run(kermany_config(kermany_small, [HEAD, FINETUNE]), run, epoch_callback=snapshot, progress=False)
    return run, head_end


def model_from_ckpt(path: Path) -> torch.nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model = build_model("efficientnet_lite0", 2)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model


def val_aucs(run: Path) -> list[float]:
    return [float(r["val_auc"]) for r in csv.DictReader((run / "metrics.csv").open())]


def test_default_backbone_learns_real_xrays(learned) -> None:
    run, _ = learned
    aucs = val_aucs(run)
    assert len(aucs) == 3
    assert aucs[0] >= AUC_FLOOR, aucs  # packaged features: one head epoch is already far above chance
    info = json.loads((run / "model.json").read_text())
    assert info["metrics"]["val_auc"] == pytest.approx(max(aucs)) and max(aucs) >= AUC_FLOOR


def test_head_stage_keeps_backbone_and_finetune_changes_only_unfrozen_blocks(learned, packaged) -> None:
    run, head_end = learned
    after_head = model_from_ckpt(head_end)
    for (key, a), b in zip(
        packaged.backbone.state_dict().items(), after_head.backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"head-only stage changed backbone tensor {key}"
    tuned = model_from_ckpt(run / "checkpoints" / "last.ckpt")
    blocks, ref = tuned.blocks(), packaged.blocks()
    for i, (t, r) in enumerate(zip(blocks, ref, strict=True)):
        if i < len(blocks) - UNFROZEN:  # frozen: parameters and BatchNorm statistics bit-identical
            for (key, a), b in zip(r.state_dict().items(), t.state_dict().values(), strict=True):
                assert torch.equal(a, b), f"frozen block {i} changed: {key}"
        else:  # trained: every parameter moved
            for (key, a), b in zip(r.named_parameters(), t.parameters(), strict=True):
                assert not torch.equal(a, b), f"unfrozen block {i} kept {key}"


def test_evaluate_val_reproduces_training_val_metrics(learned, kermany_small: Path) -> None:
    run, _ = learned
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(run),
            "--data",
            f"kermany:{kermany_small}",
            "--split",
            "val",
            "--n-boot",
            "10",
            "--worst",
            "0",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    evaluated = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    recorded = json.loads((run / "model.json").read_text())["metrics"]
    assert evaluated["metrics"]["roc_auc"] == pytest.approx(recorded["val_auc"], abs=1e-4)


def test_killed_before_first_checkpoint_resumes_from_packaged_weights(
    kermany_small, packaged, tmp_path
) -> None:
    cfg_file, run = tmp_path / "cfg.yaml", tmp_path / "run"
    save_config(kermany_config(kermany_small, [{**HEAD, "epochs": 1}]), cfg_file)
    env = dict(os.environ)
    run_and_kill(cfg_file, run, stall_at=0, env=env)
    assert (run / "metrics.csv").is_file() and not (run / "checkpoints" / "last.ckpt").exists()
    out = resume(run, env)
    assert "no checkpoint" in out and "configured weights (packaged)" in out
    aucs = val_aucs(run)
    assert len(aucs) == 1 and aucs[0] >= RESUME_FLOOR, aucs  # random weights: about 0.65
    weights = load_file(str(run / "model.safetensors"))
    for key, value in packaged.backbone.state_dict().items():
        assert torch.equal(weights[f"backbone.{key}"], value), f"resumed backbone differs at {key}"
