"""Lightning plumbing of a pretraining: data module, callbacks (clock, epoch hook), loggers, Trainer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from medxfer.models.precision import resolve_precision
from medxfer.pretraining.card import PretrainSettings
from medxfer.pretraining.views import VIEWS, EpochOrder, TwoViews


class ViewData(L.LightningDataModule):
    """Batches of two views of the prepared images, in the (seed, epoch) order of :class:`EpochOrder`."""

    def __init__(self, images: np.ndarray, mean: tuple, std: tuple, settings: PretrainSettings, workers: int):
        super().__init__()
        self.dataset = TwoViews(images, mean, std, settings.seed, VIEWS)
        self.batch_size, self.seed, self.workers = settings.batch_size, settings.seed, workers

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=EpochOrder(len(self.dataset), self.seed, epoch),
            num_workers=self.workers,
            drop_last=True,  # BatchNorm and contrastive losses need full batches
            persistent_workers=False,
        )


class Clock(Callback):
    """Seconds spent training, summed over a kill and resumes (kept in the checkpoint)."""

    def __init__(self) -> None:
        self.before, self.start = 0.0, time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("seconds", 0.0))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start


class EpochEnd(Callback):
    """Calls ``fn(epoch, metrics)`` at the end of each epoch, before its checkpoint is written
    (Lightning runs checkpoint callbacks last): the kill tests stall here."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]):
        self.fn = fn

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.fn(trainer.current_epoch, metrics)


class ResumeNote(Callback):
    """Says what a resumed pretraining restored: the checkpoint and the epochs it holds."""

    def __init__(self, path: Path):
        self.path, self.done = path, 0

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.done = int(checkpoint.get("epoch", -1)) + 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.print(
            f"resumed from {self.path}: {self.done} epoch(s) done; "
            f"continuing at epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )


def default_workers(on_gpu: bool) -> int:
    """DataLoader workers: none on a CPU (the cores are busy with the network), up to 8 on a GPU."""
    return min(8, max(1, (os.cpu_count() or 2) - 1)) if on_gpu else 0


def make_trainer(settings: PretrainSettings, out: Path, callbacks: list, progress: bool) -> L.Trainer:
    """A Trainer writing ``checkpoints/last.ckpt`` every epoch, TensorBoard ``tb/`` and CSV ``logs/``."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    last = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", enable_version_counter=False)
    callbacks = [*callbacks, last, LearningRateMonitor(logging_interval="step")]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=5))
    return L.Trainer(
        max_epochs=settings.epochs,
        accelerator=settings.accelerator,
        devices=1,
        precision=resolve_precision(  # type: ignore[arg-type]
            settings.precision, uses_gpu(settings), gpu="bf16-mixed"
        ),
        callbacks=callbacks,
        logger=[
            TensorBoardLogger(str(out), name="tb", version="", default_hp_metric=False),
            CSVLogger(str(out), name="logs", version=""),
        ],
        default_root_dir=str(out),
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def uses_gpu(settings: PretrainSettings) -> bool:
    """Whether the Trainer of ``settings`` runs on a GPU (``accelerator`` gpu/cuda, or auto with one)."""
    import torch

    if settings.accelerator in ("gpu", "cuda"):
        return True
    return settings.accelerator == "auto" and torch.cuda.is_available()
