"""Progressive resizing (``stages[i].input_size``): earlier stages train and validate smaller, the last
at the model's size; each size is decoded once; a run killed across the size change resumes exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from stall import resume, run_and_kill, run_to_end
from test_resume import assert_same_run, ckpt_epochs_done
from tiny import make_folder_dataset, tiny_config

from medxfer.config import ConfigError, load_config, save_config
from medxfer.training.module import ClassifierModule
from medxfer.training.runner import train_run


def progressive_config(data: Path, **train):  # noqa: ANN003, ANN201
    """Stage 1 (all layers, 64 px) for 2 epochs, then stage 2 (all layers) at the model's 128 px."""
    cfg = tiny_config(data, **train)
    cfg.model.input_size = 128
    cfg.stages[0].trainable, cfg.stages[0].epochs, cfg.stages[0].input_size = "all", 2, 64
    cfg.stages[1].epochs = 1
    return cfg


def test_stages_see_batches_at_their_own_size(tiny_data: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    seen: list[tuple[str, int, tuple[int, ...]]] = []
    forward = ClassifierModule.forward

    def recording(self: ClassifierModule, x: torch.Tensor) -> torch.Tensor:
        split = "train" if self.training else "val"
        seen.append((split, self.trainer.current_epoch, tuple(x.shape[1:])))
        return forward(self, x)

    monkeypatch.setattr(ClassifierModule, "forward", recording)
    loads: list[int] = []
    import medxfer.data.cache as cache

    load_prepared = cache.load_prepared
    monkeypatch.setattr(
        cache,
        "load_prepared",
        lambda paths, size, *a, **k: loads.append(size) or load_prepared(paths, size, *a, **k),
    )
    run = tmp_path / "run"
    train_run(progressive_config(tiny_data), run, progress=False)
    for split in ("train", "val"):
        shapes = {epoch: {s for sp, e, s in seen if sp == split and e == epoch} for epoch in range(3)}
        assert shapes == {0: {(3, 64, 64)}, 1: {(3, 64, 64)}, 2: {(3, 128, 128)}}, split
    assert sorted(loads) == [64, 64, 128, 128]  # train + val, each size decoded once
    info = json.loads((run / "model.json").read_text())
    assert info["input_size"] == 128  # the model's (last stage's) size, not the first stage's


def test_a_head_stage_embeds_its_own_size(tiny_data: Path) -> None:
    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import assign_splits
    from medxfer.training.data import embed_all
    from medxfer.training.fit import Mode, setup

    cfg = progressive_config(tiny_data)
    cfg.stages[0].trainable = "head"  # with augment: none, a head stage runs on cached embeddings
    table = assign_splits(load_datasets(cfg.data.specs), val=0.25, seed=0)
    s = setup(cfg, table, progress=False)
    assert s.data.stage_mode(0) == Mode("embeddings", None, -1, 64)
    small_train, small_val = s.data.images(64)
    assert small_train.shape[1:] == (64, 64) and s.data.train_x.shape[1:] == (128, 128)
    emb_train, emb_val = s.data._embeddings(-1, 64)
    assert torch.equal(emb_val, embed_all(s.data.model, small_val, s.info, progress=False))
    assert not torch.equal(emb_val, embed_all(s.data.model, s.data.val_x, s.info, progress=False))


def test_the_last_stage_must_train_at_the_model_size() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["stages.1.input_size=160"])
    msg = str(err.value)
    assert "stages[1].input_size=160: the last stage must train at the model's input size 224" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match=r"stages\[0\]\.input_size=4: expected an integer >= 8"):
        load_config(None, ["stages.0.input_size=4"])
    ok = load_config(None, ["stages.0.input_size=160", "stages.1.input_size=224"])
    assert [s.input_size for s in ok.stages] == [160, 224]


def test_killed_across_the_size_change_resumes_to_the_uninterrupted_run_with_its_ema(tmp_path: Path) -> None:
    env = {**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")}
    data = make_folder_dataset(tmp_path / "data", per_class=16, size=48)
    cfg = progressive_config(data, ema=0.9, keep="last")  # the EMA must survive the kill as well
    cfg_file = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_file)
    full, run = tmp_path / "full", tmp_path / "killed"
    run_to_end(cfg_file, full, env)
    run_and_kill(cfg_file, run, stall_at=2, env=env)  # both 64 px epochs done, the 128 px one not
    assert ckpt_epochs_done(run) == 2
    out = resume(run, env)
    assert "continuing at epoch 3/3, stage 2 'ft'" in out
    assert_same_run(full, run)
    assert np.isfinite(json.loads((run / "model.json").read_text())["metrics"]["val_auc"])
