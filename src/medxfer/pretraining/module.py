"""The LightningModule of a pretraining: one SSL method, AdamW, warm-up + cosine LR per step.

BatchNorm (``bn``): ``train`` lets the statistics follow the new images (batch statistics in the
forward pass, running averages updated); ``frozen`` keeps the source weights' running statistics
(eval mode) while scale and shift still learn. ImageNet statistics proved fragile when fine-tuning on
X-rays (bench/RESULTS.md, "Default recipe re-chosen"), so the choice is recorded in the card.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn

from medxfer.pretraining.methods import SSLMethod

BN_MODES = ("train", "frozen")


def set_bn_mode(module: nn.Module, bn: str) -> None:
    """Train mode for ``module``, with every BatchNorm layer in eval mode when ``bn == "frozen"``."""
    module.train()
    if bn == "frozen":
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def warmup_cosine(step: int, total: int, warmup: float = 0.05) -> float:
    """LR factor at ``step`` of ``total``: linear warm-up over ``warmup`` of training, then cosine to 0."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


class PretrainModule(L.LightningModule):
    """Trains ``method`` (its backbone and heads) for ``total_steps`` optimizer steps."""

    def __init__(
        self,
        method: SSLMethod,
        *,
        lr: float,
        weight_decay: float,
        total_steps: int,
        bn: str,
        channels_last: bool,
    ):
        super().__init__()
        self.method, self.lr, self.weight_decay = method, lr, weight_decay
        self.total_steps, self.bn, self.channels_last = max(1, total_steps), bn, channels_last

    def on_train_batch_start(self, batch, batch_idx: int) -> None:  # noqa: ANN001
        set_bn_mode(self.method, self.bn)  # every step: Lightning may restore earlier modes

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # noqa: ANN001
        x1, x2 = batch
        if self.channels_last:
            x1, x2 = (x.contiguous(memory_format=torch.channels_last) for x in (x1, x2))
        progress = min(1.0, self.global_step / self.total_steps)
        loss = self.method.loss(x1, x2, progress, self.current_epoch)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x1))
        return loss

    def on_after_backward(self) -> None:
        self.method.after_backward(self.current_epoch)

    # A resumed run must draw the same random numbers (dropout masks) as an uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["medxfer_torch_rng"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "medxfer_torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["medxfer_torch_rng"])

    def configure_optimizers(self):  # noqa: ANN201
        params = [p for p in self.method.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        total = self.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
