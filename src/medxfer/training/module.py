"""The LightningModule: loss, metrics and optimizer around a medxfer :class:`Classifier`.

Batches are either images ``(B, 3, S, S)`` or cached embeddings ``(B, F)``; embeddings skip the
backbone (head-only stages). Learning rates are set per step by :class:`StageCallback`.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from medxfer.config import TrainConfig
from medxfer.training.pieces import classification_loss, logits_to_proba, make_optimizer
from medxfer.training.stages import (
    apply_trainable,
    group_base_lrs,
    param_groups,
    schedule_factor,
    set_lrs,
    set_train_modes,
    stage_at_epoch,
)


def epoch_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and ROC AUC of one epoch's predictions, by :mod:`medxfer.evaluate.metrics`
    (the functions ``medxfer evaluate`` uses, so training's val numbers are evaluation's)."""
    from medxfer.evaluate.metrics import accuracy, confusion_matrix, f1_scores, predict, roc_auc

    pred = predict(proba)
    macro_f1, _ = f1_scores(confusion_matrix(y, pred, proba.shape[1]))
    return {"acc": accuracy(y, pred), "f1": macro_f1, "auc": roc_auc(y, proba)}


class ClassifierModule(L.LightningModule):
    """Trains ``model`` with the loss and optimizer of ``cfg``."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))
        self._outputs: dict[str, list] = {"train": [], "val": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:  # cached embeddings: the head alone
            return self.model.head(x)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weight = self.class_weights if self.class_weights.numel() else None
        return classification_loss(logits, y, self.model.output, weight, self.cfg.train.label_smoothing)

    def _proba(self, logits: torch.Tensor) -> torch.Tensor:
        return logits_to_proba(logits, self.model.output)

    def _step(self, batch, split: str) -> torch.Tensor:  # noqa: ANN001
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y)
        self._outputs[split].append(
            (y.detach().cpu(), self._proba(logits.detach().float()).cpu(), loss.detach())
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # noqa: ANN001
        loss = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:  # noqa: ANN001
        self._step(batch, "val")

    def _epoch_end(self, split: str) -> None:
        outs = self._outputs[split]
        if not outs:
            return
        y = torch.cat([o[0] for o in outs]).numpy()
        proba = torch.cat([o[1] for o in outs]).numpy()
        sizes = torch.tensor([len(o[0]) for o in outs], dtype=torch.float32)
        losses = torch.stack([o[2].float().cpu() for o in outs])
        metrics = {"loss": float((losses * sizes).sum() / sizes.sum()), **epoch_metrics(y, proba)}
        sync = self.trainer.world_size > 1
        for name, value in metrics.items():
            self.log(f"{split}_{name}", value, prog_bar=split == "val", sync_dist=sync)
        self._outputs[split] = []

    # Callbacks' epoch-end hooks run before the module's: train metrics are logged when validation
    # starts (the epoch's training batches are all done by then) so History sees both splits.
    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.cfg.train, param_groups(self.model))

    # A resumed run must draw the same dropout masks as an uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["medxfer_torch_rng"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "medxfer_torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["medxfer_torch_rng"])


class StageCallback(Callback):
    """Applies the stage of each epoch: trainable parameters, frozen BatchNorm, per-step LR schedule."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        self.cfg = cfg
        self.steps_per_epoch = steps_per_epoch  # optimizer steps per epoch (the LR schedule's unit)

    def _position(self, trainer: L.Trainer):  # noqa: ANN202
        return stage_at_epoch(self.cfg.stages, trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: ClassifierModule) -> None:
        pos = self._position(trainer)
        apply_trainable(pl_module.model, pos.stage)
        if pos.epoch_in_stage == 0:
            trainer.print(
                f"stage {pos.index + 1}/{len(self.cfg.stages)} '{pos.stage.name}': "
                f"trainable={pos.stage.trainable} lr={pos.stage.lr} epochs={pos.stage.epochs}"
            )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: ClassifierModule, batch, batch_idx: int
    ) -> None:  # noqa: ANN001
        pos = self._position(trainer)
        set_train_modes(pl_module.model, freeze_bn=pos.stage.bn == "frozen")
        per_epoch = self.steps_per_epoch
        step = pos.epoch_in_stage * per_epoch + batch_idx
        optimizer = trainer.optimizers[0]
        base = group_base_lrs(pos.stage, len(optimizer.param_groups), float(pos.stage.lr))
        factor = schedule_factor(
            self.cfg.train.scheduler, step, per_epoch * pos.stage.epochs, self.cfg.train.warmup_fraction
        )
        set_lrs(optimizer, base, factor)
