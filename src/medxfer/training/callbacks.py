"""Monitoring callbacks: per-epoch history (metrics.csv + curves.png), early stopping in the last
stage, and a hook for callers such as Optuna's pruning."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar

from medxfer.config import StageConfig
from medxfer.io import atomic_write_bytes, atomic_write_text
from medxfer.training.stages import stage_at_epoch, stage_boundaries

HISTORY_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "train_auc", "val_auc", "val_f1")


class History(Callback):
    """Keeps one row per epoch (saved in checkpoints, so a resumed run continues the same table) and
    rewrites ``metrics.csv`` and ``curves.png`` in the run folder after every epoch."""

    def __init__(self, run_dir: Path, stages: list[StageConfig]):
        self.run_dir, self.stages = Path(run_dir), stages
        self.rows: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        pos = stage_at_epoch(self.stages, trainer.current_epoch)
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1, "stage": pos.stage.name}
        for key in HISTORY_KEYS:
            row[key] = round(float(m[key]), 6) if key in m else float("nan")
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self.write()

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["epoch", "stage", *HISTORY_KEYS])
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())
        atomic_write_bytes(self.run_dir / "curves.png", plot_curves(self.rows, stage_boundaries(self.stages)))


def plot_curves(rows: list[dict[str, Any]], boundaries: list[tuple[int, str]]) -> bytes:
    """Loss, accuracy and AUC per epoch for train and val, stage boundaries marked; PNG bytes."""
    from matplotlib.ticker import MaxNLocator

    from medxfer.io import figure_png, pyplot

    plt = pyplot()

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("loss", "acc", "auc"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{metric}", math.nan) for r in rows]
            if any(not math.isnan(v) for v in values):
                ax.plot(epochs, values, style, label=split, markersize=4)
        for start, name in boundaries[1:]:
            ax.axvline(start + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(start + 0.6, ax.get_ylim()[1], name, va="top", fontsize=8, color="grey")
        ax.set_title(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig, dpi=90)


class LastStageEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, active only in the final stage (an early stop in the head-only
    stage would skip fine-tuning altogether)."""

    def __init__(self, stages: list[StageConfig], **kwargs: Any):
        super().__init__(**kwargs)
        self.stages = stages

    def _in_last_stage(self, trainer: L.Trainer) -> bool:
        last = max(i for i, s in enumerate(self.stages) if s.epochs > 0)
        return stage_at_epoch(self.stages, trainer.current_epoch).index == last

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._in_last_stage(trainer):
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._in_last_stage(trainer):
            super().on_train_epoch_end(trainer, pl_module)


class EpochHook(Callback):
    """Calls ``fn(epoch, metrics)`` after each validation (e.g. Optuna's report + prune)."""

    def __init__(self, fn: Callable[[int, dict[str, float]], None]):
        self.fn = fn

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1
        }
        self.fn(trainer.current_epoch, metrics)


class ResumeReport(Callback):
    """Says what a resumed run restored: the checkpoint, the epochs it holds, where training goes on."""

    def __init__(self, path: Path, stages: list[StageConfig]):
        self.path, self.stages = Path(path), stages
        self.done: int | None = None

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.done = int(checkpoint.get("epoch", -1)) + 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        pos = stage_at_epoch(self.stages, epoch)
        trainer.print(
            f"resumed from {self.path}: {self.done} epoch(s) done; continuing at epoch {epoch + 1}/"
            f"{trainer.max_epochs}, stage {pos.index + 1} '{pos.stage.name}' "
            f"(epoch {pos.epoch_in_stage + 1}/{pos.stage.epochs} of the stage)"
        )


def stage_label(stages: list[StageConfig], epoch: int) -> str:
    """``stage 2/2 finetune, epoch 1/1`` for global ``epoch`` (0-based); stages of 0 epochs not counted."""
    active = [i for i, s in enumerate(stages) if s.epochs > 0]
    pos = stage_at_epoch(stages, epoch)
    return (
        f"stage {active.index(pos.index) + 1}/{len(active)} {pos.stage.name}, "
        f"epoch {pos.epoch_in_stage + 1}/{pos.stage.epochs}"
    )


class StageProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar labelled by stage (``stage 2/2 finetune, epoch 1/1``, not ``Epoch 4``), and
    one end line of our own instead of Lightning's ``max_epochs=N reached``."""

    def __init__(self, stages: list[StageConfig], refresh_rate: int = 5):
        super().__init__(refresh_rate=refresh_rate)
        self.stages = stages

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        # Lightning's version: reset (which draws), then "Epoch N"; a log file would keep both lines
        from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

        bar = self.train_progress_bar
        bar.set_description(stage_label(self.stages, trainer.current_epoch), refresh=False)
        bar.reset(total=convert_inf(self.total_train_batches))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        last = trainer.current_epoch - 1  # Lightning counts the epoch after the last one done
        if last < 0 or not trainer.is_global_zero:
            return
        early = trainer.should_stop and trainer.current_epoch < trainer.max_epochs
        how = "stopped early at" if early else "done:"
        trainer.print(
            f"training {how} {stage_label(self.stages, last)} ({trainer.current_epoch} epochs in all)"
        )
