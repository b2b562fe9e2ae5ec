"""Stage schedule maths: which stage an epoch is in, discriminative rates, LR schedule shapes."""

from __future__ import annotations

import math

import pytest
import torch

from medxfer.config import ConfigError, StageConfig, from_dict, load_config
from medxfer.models.backbones import build_model
from medxfer.training.stages import (
    apply_trainable,
    group_base_lrs,
    param_groups,
    schedule_factor,
    stage_at_epoch,
    stage_boundaries,
)

STAGES = [
    StageConfig(name="head", epochs=2, trainable="head", lr=1e-2),
    StageConfig(name="skip", epochs=0, trainable="all"),
    StageConfig(name="ft", epochs=3, trainable="last:2", lr=1e-3, backbone_lr_mult=0.1, lr_decay=0.5),
]


def test_stage_at_epoch_skips_empty_stages() -> None:
    got = [(p.index, p.epoch_in_stage) for p in (stage_at_epoch(STAGES, e) for e in range(5))]
    assert got == [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]
    assert stage_boundaries(STAGES) == [(0, "head"), (2, "ft")]


def test_discriminative_rates_last_two_blocks() -> None:
    # 4 backbone blocks + head; last:2 -> blocks 2 and 3 learn, block 3 at lr*0.1, block 2 at lr*0.1*0.5
    rates = group_base_lrs(STAGES[2], 5, 1e-3)
    assert rates == pytest.approx([0.0, 0.0, 5e-5, 1e-4, 1e-3])
    assert group_base_lrs(STAGES[0], 5, 1e-2) == pytest.approx([0, 0, 0, 0, 1e-2])


def test_onecycle_warms_up_then_anneals() -> None:
    f = [schedule_factor("onecycle", s, 100) for s in range(100)]
    peak = max(range(100), key=f.__getitem__)
    assert f[0] == pytest.approx(0.04)
    assert 8 <= peak <= 11 and f[peak] == pytest.approx(1.0, abs=0.02)
    assert f[-1] < 1e-3
    assert schedule_factor("cosine", 0, 10) == 1.0 and schedule_factor("cosine", 9, 10) == pytest.approx(0.0)
    assert schedule_factor("constant", 5, 10) == 1.0
    assert all(not math.isnan(v) for v in f)


def test_apply_trainable_freezes_all_but_last_blocks() -> None:
    model = build_model("custom_cnn", num_classes=2)
    blocks = model.blocks()
    assert apply_trainable(model, StageConfig(trainable="head")) is True
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert apply_trainable(model, StageConfig(trainable="last:1")) is False
    assert all(p.requires_grad for p in blocks[-1].parameters())
    assert not any(p.requires_grad for p in blocks[0].parameters())
    groups = param_groups(model)
    assert groups[-1]["name"] == "head"
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(p.numel() for p in model.parameters())


def test_config_rejects_bad_values_with_choices(tmp_path) -> None:
    with pytest.raises(ConfigError, match="valid: head, all, last:K"):
        from_dict({"stages": [{"trainable": "some"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict({"train": {"batchsize": 3}})
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  weight_decay: 1e-4\nstages:\n  - {epochs: 1, lr: 1e-3}\n")
    cfg = load_config(cfg_file, ["stages.0.lr=2e-3"])
    assert cfg.train.weight_decay == pytest.approx(1e-4) and cfg.stages[0].lr == pytest.approx(2e-3)
    assert isinstance(torch.tensor(cfg.stages[0].lr).item(), float)


def test_limit_train_caps_each_class_and_keeps_columns() -> None:
    import pandas as pd

    from medxfer.data.datasets import ImageTable
    from medxfer.training.pieces import limit_train

    df = pd.DataFrame(
        {
            "path": [f"/p{i}" for i in range(12)],
            "label": [0] * 6 + [1] * 4 + [0, 1],
            "label_name": ["a"] * 6 + ["b"] * 4 + ["a", "b"],
            "patient_id": [str(i) for i in range(12)],
            "source": "s",
            "view": "",
            "split": ["train"] * 10 + ["val", "val"],
        }
    )
    rows = limit_train(ImageTable(["a", "b"], df), 3, seed=0)
    assert sorted(rows["label"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert set(rows["split"]) == {"train"} and list(rows.columns) == list(df.columns)
    assert rows["path"].tolist() == sorted(rows["path"])
    assert rows.equals(limit_train(ImageTable(["a", "b"], df), 3, seed=0))


def test_train_modes_follow_the_stage_not_the_previous_one() -> None:
    """Frozen layers run in eval mode (BatchNorm statistics kept); a later stage that trains them
    puts them back in train mode (a head stage's eval backbone used to leak into fine-tuning)."""
    from medxfer.training.stages import set_train_modes

    model = build_model("custom_cnn", num_classes=2)
    blocks = model.blocks()
    apply_trainable(model, StageConfig(trainable="head"))
    set_train_modes(model)
    assert model.head.training and not any(m.training for m in model.backbone.modules())
    model.eval()  # what Lightning leaves after validation
    apply_trainable(model, StageConfig(trainable="last:1"))
    set_train_modes(model)
    assert all(m.training for m in blocks[-1].modules()) and model.head.training
    assert not any(m.training for b in blocks[:-1] for m in b.modules())
    apply_trainable(model, StageConfig(trainable="all"))
    set_train_modes(model)
    assert all(m.training for m in model.modules())


def test_bn_frozen_keeps_running_statistics_while_the_block_learns() -> None:
    """``bn: frozen``: BatchNorm layers of a trained block stay in eval mode (statistics kept),
    their affine parameters and the convolutions still train."""
    import torch

    from medxfer.training.stages import set_train_modes

    model = build_model("custom_cnn", num_classes=2)
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns, "custom_cnn should have BatchNorm layers for this test"
    apply_trainable(model, StageConfig(trainable="all", bn="frozen"))
    set_train_modes(model, freeze_bn=True)
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns, strict=True))
    assert all(p.requires_grad for m in bns for p in m.parameters()) and model.backbone.training
    set_train_modes(model)  # bn: train (the default) updates them again
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert not torch.equal(before[0], bns[0].running_mean)
