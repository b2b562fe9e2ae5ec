"""Weight averages: the saved model is an average of the weights training passed through.

- ``train.ema: DECAY`` — an exponential moving average updated after every optimizer step,
  ``avg = decay * avg + (1 - decay) * w``, from the first step of the first stage that trains the
  backbone (``trainable`` other than ``head``; the first stage when none does). Decay 0 is the last
  weights; 0.999 averages over roughly the last 1,000 steps.
- ``train.swa_epochs: N`` — stochastic weight averaging without its learning-rate schedule: the
  uniform mean of the weights at the end of each of the last ``N`` epochs.

Only parameters are averaged; buffers (BatchNorm running statistics, counters) are copied from the
current weights. SWA normally re-estimates BatchNorm statistics for the averaged weights; medxfer's
recipes fine-tune with ``bn: frozen`` (the pretrained statistics never change), so it does not: with
``bn: train`` the averaged weights keep the last epoch's statistics. Once averaging has started,
validation runs on the averaged weights (the epoch's metrics are those of the model that would be
saved), training goes on from the raw ones. The average lives in the callback's state, saved in every
checkpoint, so a killed run resumes with it; both need ``train.keep: last`` (checked in the config).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from medxfer.config import TrainConfig


def averaging_start(cfg: TrainConfig) -> int:
    """The first (0-based) epoch whose weights enter the average."""
    if cfg.train.swa_epochs is not None:
        return cfg.total_epochs - cfg.train.swa_epochs
    start = 0
    for stage in cfg.stages:
        if stage.trainable != "head" and stage.epochs > 0:
            return start
        start += stage.epochs
    return 0


class WeightAverage(Callback):
    """EMA (``train.ema``) or SWA (``train.swa_epochs``) of the module's ``model`` weights."""

    def __init__(self, cfg: TrainConfig):
        self.kind = "ema" if cfg.train.ema is not None else "swa"
        self.decay = float(cfg.train.ema or 0.0)
        self.start = averaging_start(cfg)
        self.avg: dict[str, torch.Tensor] | None = None
        self.count = 0  # weights averaged so far (SWA: epochs; EMA: steps)
        self._raw: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return f"WeightAverage[{self.kind}]"

    def state_dict(self) -> dict[str, Any]:
        return {"avg": self.avg, "count": self.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.avg, self.count = state_dict.get("avg"), int(state_dict.get("count", 0))

    def _update(self, model: torch.nn.Module, weight: float) -> None:
        """``avg = (1 - weight) * avg + weight * w`` for parameters; buffers copied."""
        params = {name for name, _ in model.named_parameters()}
        current = model.state_dict()
        if self.avg is None:
            self.avg = {k: v.detach().clone() for k, v in current.items()}
        else:
            with torch.no_grad():
                for key, value in current.items():
                    if key in params and value.is_floating_point():
                        self.avg[key].lerp_(value.detach().to(self.avg[key].dtype), weight)
                    else:
                        self.avg[key].copy_(value)
        self.count += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.kind == "ema" and trainer.current_epoch >= self.start:
            self._update(pl_module.model, 1.0 - self.decay)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.current_epoch < self.start:
            return
        if self.kind == "swa":  # the weights at the end of this epoch's training
            self._update(pl_module.model, 1.0 / (self.count + 1))
        if self.avg is not None:
            self._raw = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
            pl_module.model.load_state_dict(self.avg)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._raw is not None:  # back to the raw weights before the checkpoint is written
            pl_module.model.load_state_dict(self._raw)
            self._raw = None

    def apply(self, model: torch.nn.Module) -> bool:
        """Load the average into ``model`` (the weights to save); False when nothing was averaged."""
        if self.avg is None:
            return False
        model.load_state_dict(self.avg)
        return True


def weight_average(cfg: TrainConfig) -> WeightAverage | None:
    """The run's :class:`WeightAverage` callback, or None when the config asks for none."""
    return WeightAverage(cfg) if cfg.train.ema is not None or cfg.train.swa_epochs is not None else None
