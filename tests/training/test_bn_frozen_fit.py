"""``bn: frozen`` reaches the real training loop (an escaped bug: the stage key was checked, not wired).

Trained through :func:`medxfer.training.runner.train_run`: with ``bn: frozen`` every BatchNorm running
statistic of the saved model is bit-identical to the network's start while the convolutions moved; the
same run with ``bn: train`` changes those statistics (so the data would move them).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from tiny import tiny_config


def _start_and_end(cfg, out: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:  # noqa: ANN001
    """The network's weights before the first step (the fit's own setup) and the saved model's."""
    from medxfer.training.fit import setup
    from medxfer.training.runner import resolve_data, train_run

    plan = out.parent / f"{out.name}-plan"
    plan.mkdir()
    table = resolve_data(cfg, plan, resume=False, progress=False)
    start = {k: v.clone() for k, v in setup(cfg, table).module.model.state_dict().items()}
    train_run(cfg, out, progress=False)
    return start, load_file(str(out / "model.safetensors"))


def _stats(weights: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in weights if k.endswith(("running_mean", "running_var"))]


def test_bn_frozen_keeps_statistics_while_convolutions_learn(tiny_data: Path, tmp_path: Path) -> None:
    def config(bn: str):  # noqa: ANN202
        cfg = tiny_config(tiny_data, augment="none")
        cfg.train.feature_cache = False
        cfg.stages = cfg.stages[1:]
        cfg.stages[0].bn, cfg.stages[0].lr = bn, 1e-2
        return cfg

    start, frozen = _start_and_end(config("frozen"), tmp_path / "frozen")
    stats = _stats(frozen)
    assert len(stats) >= 8  # custom_cnn: 4 BatchNorm layers
    for key in stats:
        assert torch.equal(frozen[key], start[key]), f"bn: frozen changed {key}"
    convs = [k for k in frozen if k.endswith("weight") and frozen[k].ndim == 4]
    assert convs and all(not torch.equal(frozen[k], start[k]) for k in convs)  # the convolutions learned
    _, trained = _start_and_end(config("train"), tmp_path / "train")
    assert any(not torch.equal(trained[k], start[k]) for k in stats)  # bn: train moves them
