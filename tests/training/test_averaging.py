"""Weight averages (``train.ema``, ``train.swa_epochs``): the saved model is the average the options
describe, checked number for number on tiny runs; bad combinations are refused with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_config

from medxfer.config import ConfigError, load_config
from medxfer.training.runner import train_run


def ckpt_model(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def test_ema_with_decay_zero_saves_the_last_weights(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_run(tiny_config(tiny_data, ema=0.0, keep="last"), run, progress=False)
    saved, last = load_file(str(run / "model.safetensors")), ckpt_model(run / "checkpoints" / "last.ckpt")
    assert saved.keys() == last.keys()
    for key, value in last.items():
        assert torch.equal(saved[key], value), key
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["callbacks"]["WeightAverage[ema]"]["count"] > 0  # the average travels in checkpoints


def test_ema_averages_the_fine_tuning_steps(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_run(tiny_config(tiny_data, ema=0.5, keep="last"), run, progress=False)
    saved, last = load_file(str(run / "model.safetensors")), ckpt_model(run / "checkpoints" / "last.ckpt")
    moved = [k for k in last if last[k].is_floating_point() and not torch.equal(saved[k], last[k])]
    assert moved  # not the last weights: an average of the fine-tuning steps
    for key in (k for k in last if "running" in k or "num_batches" in k):
        assert torch.equal(saved[key], last[key]), key  # BatchNorm buffers are copied, not averaged


def test_swa_is_the_mean_of_the_last_epochs_weights(tiny_data: Path, tmp_path: Path) -> None:
    run, snapshots = tmp_path / "run", {}

    def snapshot(epoch: int, metrics: dict) -> None:  # runs before the epoch's own checkpoint
        if epoch >= 2:
            snapshots[epoch - 1] = tmp_path / f"epoch{epoch - 1}.ckpt"
            shutil.copy(run / "checkpoints" / "last.ckpt", snapshots[epoch - 1])

    cfg = tiny_config(tiny_data, swa_epochs=2, keep="last")
    cfg.stages[1].epochs = 3  # epochs 0 (head), 1, 2, 3: the average is of the ends of epochs 2 and 3
    train_run(cfg, run, epoch_callback=snapshot, progress=False)
    e1, e2, e3 = (
        ckpt_model(snapshots[1]),
        ckpt_model(snapshots[2]),
        ckpt_model(run / "checkpoints" / "last.ckpt"),
    )
    saved = load_file(str(run / "model.safetensors"))
    params = {k for k in e3 if "running" not in k and "num_batches" not in k}
    assert any(not torch.equal(e1[k], e2[k]) for k in params)  # the epochs' weights differ
    for key in e3:
        expected = (e2[key] + e3[key]) / 2 if key in params else e3[key]
        torch.testing.assert_close(saved[key], expected, rtol=0, atol=1e-6, msg=key)


BAD = [
    ("train.ema=1.0", "train.ema=1.0: expected a decay in [0, 1)"),
    ("train.swa_epochs=0", "train.swa_epochs=0: expected an integer in 1..4"),
    ("train.swa_epochs=9", "train.swa_epochs=9: expected an integer in 1..4"),
    (
        "train.ema=0.99",
        "train.keep='best' with a weight average (train.ema/swa_epochs): set train.keep: last",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_averages_are_refused_with_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override, *(["train.keep=last"] if "keep" not in message else [])])
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="choose one weight average"):
        load_config(None, ["train.ema=0.9", "train.swa_epochs=1", "train.keep=last"])
