"""The Lightning part of a training run: model, data, callbacks, loggers, fit, and the outputs."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from medxfer.config import TrainConfig
from medxfer.evaluate.monitors import direction
from medxfer.io import atomic_write_text
from medxfer.runs import ModelInfo, save_model
from medxfer.training.pieces import limit_train


def _threads(cfg: TrainConfig) -> None:
    import torch

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)


class Mode(NamedTuple):
    """What the data module serves in one epoch: ``images`` (augmented) or cached ``embeddings`` of the
    backbone ``version`` (the last stage before that trained it), at side ``size`` (None: the model's)."""

    kind: str
    augment: Any
    version: int
    size: int | None = None


class StageMode:
    """epoch -> :class:`Mode` for the data module (picklable for DDP)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def __call__(self, epoch: int) -> Mode:
        from medxfer.data.transforms import get_augment
        from medxfer.training.stages import stage_at_epoch

        cfg = self.cfg
        pos = stage_at_epoch(cfg.stages, epoch)
        augment = pos.stage.augment if pos.stage.augment is not None else cfg.train.augment
        # The backbone changes only in stages that train it: its "version" is the last such stage before.
        version = max([i for i, s in enumerate(cfg.stages[: pos.index]) if s.trainable != "head"], default=-1)
        frozen = pos.stage.trainable == "head"
        if frozen and cfg.train.feature_cache and get_augment(augment).is_identity():
            return Mode("embeddings", None, version, pos.stage.input_size)
        return Mode("images", augment, version, pos.stage.input_size)


def _steps_per_epoch(cfg: TrainConfig, n_train: int) -> int:
    """Optimizer steps per epoch on each process (DDP splits the data between devices x nodes)."""
    devices = cfg.train.devices if isinstance(cfg.train.devices, int) else 1
    per = math.ceil(n_train / max(devices * cfg.train.num_nodes, 1) / cfg.train.batch_size)
    if cfg.train.max_batches_per_epoch:
        per = min(per, cfg.train.max_batches_per_epoch)
    return per


def _trainer(cfg: TrainConfig, run_dir: Path, callbacks: list, progress: bool):  # noqa: ANN202
    import lightning as L
    import torch

    from medxfer.models.precision import resolve_precision

    on_gpu = cfg.train.accelerator in ("gpu", "cuda") or (
        cfg.train.accelerator == "auto" and torch.cuda.is_available()
    )
    precision = resolve_precision(cfg.train.precision, on_gpu)
    if progress:
        from medxfer.training.callbacks import StageProgressBar

        callbacks = [*callbacks, StageProgressBar(cfg.stages, refresh_rate=5)]
    strategy = cfg.train.strategy
    if strategy == "ddp":  # frozen stages leave parameters without gradients: DDP must allow that
        strategy = "ddp_find_unused_parameters_true"
    from lightning.pytorch.callbacks import LearningRateMonitor

    callbacks = [*callbacks, LearningRateMonitor(logging_interval="step")]
    return L.Trainer(
        max_epochs=cfg.total_epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        strategy=strategy,
        num_nodes=cfg.train.num_nodes,
        precision=precision,
        callbacks=callbacks,
        logger=_loggers(cfg, run_dir),
        default_root_dir=str(run_dir),
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.train.grad_clip,
        limit_train_batches=cfg.train.max_batches_per_epoch or 1.0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        deterministic=False,
    )


def _loggers(cfg: TrainConfig, run_dir: Path) -> list:
    """The configured Lightning loggers: ``tb/`` (TensorBoard), ``logs/`` (CSV), MLflow (``mlruns/``)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    out: list = []
    if "tensorboard" in cfg.train.loggers:
        out.append(TensorBoardLogger(str(run_dir), name="tb", version="", default_hp_metric=False))
    if "csv" in cfg.train.loggers:
        out.append(CSVLogger(str(run_dir), name="logs", version=""))
    if "mlflow" in cfg.train.loggers:
        from medxfer.training.tracking import mlflow_logger

        out.append(mlflow_logger(cfg, run_dir))
    return out


def _load(table, info: ModelInfo, split: str, rows=None, progress: bool = True, size: int | None = None):  # noqa: ANN001, ANN202
    from medxfer.data.cache import load_prepared

    rows = rows if rows is not None else table.table[table.table["split"] == split]
    paths = list(rows["path"])
    size = size or info.input_size
    desc = split if size == info.input_size else f"{split} at {size} px"
    x = load_prepared(
        paths, size, info.channels, info.mask_boxes, progress=progress, desc=desc, preprocess=info.preprocess
    )
    return x, rows["label"].to_numpy(dtype=np.int64)


def stage_sizes(cfg: TrainConfig, model_size: int) -> list[int]:
    """The sides stages train at other than the model's (progressive resizing), each once, sorted."""
    sizes = {s.input_size for s in cfg.stages if s.epochs > 0 and s.input_size}
    return sorted(sizes - {model_size})


def _images(cfg: TrainConfig, table, info: ModelInfo, train_rows, progress: bool):  # noqa: ANN001, ANN202
    """``(train, val, resized)``: (images, labels) at the model's size, and ``{size: (train images, val
    images)}`` for each smaller stage size (each decoded once; the image cache keys on the size)."""
    train = _load(table, info, "train", train_rows, progress)
    val_rows = limit_train(table, cfg.data.limit_per_class, cfg.data.seed, "val")
    val = _load(table, info, "val", val_rows, progress)
    resized = {
        size: (
            _load(table, info, "train", train_rows, progress, size)[0],
            _load(table, info, "val", val_rows, progress, size)[0],
        )
        for size in stage_sizes(cfg, info.input_size)
    }
    return train, val, resized


@dataclass
class Setup:
    """What a fit (or an LR range test) needs, built from a config and a dataset table."""

    info: ModelInfo
    module: Any
    data: Any
    n_train: int


def setup(cfg: TrainConfig, table, resume: bool = False, progress: bool = True) -> Setup:  # noqa: ANN001
    """Seed, resolve channels and preprocessing, build the model (+ weights), decode images once.

    ``resume=True`` means a checkpoint will be restored: the configured weights are not loaded.
    """
    import lightning as L

    from medxfer.data.resolve import resolve_channels
    from medxfer.models.weights import load_weights
    from medxfer.training.data import RunData
    from medxfer.training.module import ClassifierModule
    from medxfer.training.pieces import build_info, class_weights

    _threads(cfg)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    train_rows = limit_train(table, cfg.data.limit_per_class, cfg.data.seed)
    if (table.table["split"] == "val").sum() == 0:
        raise ValueError("no validation images: set data.val > 0 or give a splits file with a val split")
    channels = resolve_channels(cfg.data.channels, list(train_rows["path"]))
    info = build_info(cfg, table.class_names, channels)
    model = info.networks[0].build(info.num_classes, info.output)  # a training run: one network
    if not resume:  # a resumed run gets its weights from the checkpoint
        load_weights(model, cfg.model.backbone, cfg.model.weights)
    train, val, resized = _images(cfg, table, info, train_rows, progress)
    weights = class_weights(train[1], info.num_classes) if cfg.train.imbalance == "class_weights" else None
    module = ClassifierModule(model, cfg, weights)
    data = RunData(
        train,
        val,
        info,
        cfg.train.batch_size,
        cfg.train.seed,
        cfg.train.imbalance == "balanced_sampler",
        cfg.train.num_workers,
        StageMode(cfg),
        progress=progress,
        resized=resized,
    )
    data.model = model
    return Setup(info, module, data, len(train[1]))


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (damaged, or holding objects other than tensors and data)."""


def check_checkpoint(path: Path) -> None:
    """Load ``path`` as torch's ``weights_only=True`` does (no code runs); one clear line if it fails.

    ``fit`` calls it before handing the checkpoint to Lightning (which also loads with ``weights_only``).
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{path}: not a loadable training checkpoint ({type(exc).__name__}: {first}); it may be damaged "
            "or hold code (only tensors and plain data are loaded). Move it away to restart the run "
            "from its configured weights"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (no 'state_dict')")


def fit(cfg: TrainConfig, table, run_dir: Path, *, resume: bool, epoch_callback=None, progress: bool = True):  # noqa: ANN001, ANN201
    """Build everything, run ``Trainer.fit`` over all stages, and write the model and its summary."""
    from medxfer.training.averaging import weight_average
    from medxfer.training.callbacks import EpochHook, History, LastStageEarlyStopping, ResumeReport
    from medxfer.training.module import StageCallback
    from medxfer.training.pieces import TrainResult

    last = run_dir / "checkpoints" / "last.ckpt"
    restore = resume and last.exists()
    if resume and not restore:
        print(
            f"resume: no checkpoint in {last.parent} yet; "
            f"starting again from the configured weights ({cfg.model.weights})"
        )
    if restore:
        check_checkpoint(last)
    s = setup(cfg, table, restore, progress)  # without a checkpoint a resumed run starts like a fresh one
    _resolve_auto_lr(cfg, s.data, s.module, run_dir)
    monitor, mode = cfg.train.monitor, direction(cfg.train.monitor)[:3]  # "min" / "max"
    best_ckpt, last_ckpt = _checkpoints(run_dir, monitor, mode)
    history = History(run_dir, cfg.stages)
    callbacks: list = [StageCallback(cfg, _steps_per_epoch(cfg, s.n_train)), history, best_ckpt, last_ckpt]
    if restore:
        callbacks.append(ResumeReport(last, cfg.stages))
    if cfg.train.early_stopping_patience:
        callbacks.append(
            LastStageEarlyStopping(
                cfg.stages, monitor=monitor, mode=mode, patience=cfg.train.early_stopping_patience
            )
        )
    if epoch_callback is not None:
        callbacks.append(EpochHook(epoch_callback))
    average = weight_average(cfg)
    if average is not None:
        callbacks.insert(1, average)  # before History and the checkpoints: validation sees the average
    trainer = _trainer(cfg, run_dir, callbacks, progress)
    t0 = time.perf_counter()
    trainer.fit(s.module, datamodule=s.data, ckpt_path=str(last) if restore else None, weights_only=True)
    elapsed = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return TrainResult(run_dir, float("nan"))
    if average is not None:
        average.apply(s.module.model)  # the saved weights are the average (train.keep is last)
    result = _finish(cfg, history.rows, best_ckpt, s.module, s.info, run_dir, s.n_train, elapsed)
    # the config and the best epoch's validation metrics, side by side in TensorBoard's HPARAMS tab
    metrics = {f"hp/{k}": float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    for logger in trainer.loggers:
        if type(logger).__name__ == "TensorBoardLogger":
            logger.log_hyperparams(flat_hparams(cfg), metrics or {"hp/best_metric": result.best_metric})
    return result


def _checkpoints(run_dir: Path, monitor: str, mode: str):  # noqa: ANN202
    """``(best, last)`` checkpoint callbacks writing ``run_dir/checkpoints/{best,last}.ckpt``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    folder = run_dir / "checkpoints"
    best = ModelCheckpoint(
        dirpath=folder, filename="best", monitor=monitor, mode=mode, enable_version_counter=False
    )
    # Every epoch, after best.ckpt (so it holds the best callback's new state). Lightning's own
    # save_last writes last.ckpt only when a top-k checkpoint was saved: a run killed after epochs
    # without improvement would resume from the last improvement instead of the last epoch.
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, enable_version_counter=False)
    return best, last


def _finish(  # noqa: ANN202
    cfg: TrainConfig,
    history: list[dict],
    best_ckpt,  # noqa: ANN001
    module,  # noqa: ANN001
    info: ModelInfo,
    run_dir: Path,
    n_train: int,
    elapsed: float,
):
    """Best checkpoint -> model.safetensors + model.json; train_summary.json; printed paths."""
    import torch

    from medxfer.models.backbones import count_parameters
    from medxfer.training.pieces import TrainResult

    keep_last = cfg.train.keep == "last"  # the final weights are in module already
    if best_ckpt.best_model_path and not keep_last:
        state = torch.load(best_ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    best_epoch = history[-1] if keep_last and history else _best_row(history, cfg.train.monitor)
    info.metrics = {k: v for k, v in best_epoch.items() if k.startswith("val_")} if best_epoch else {}
    info.extra = {"best_epoch": best_epoch.get("epoch") if best_epoch else None, "config_name": cfg.name}
    save_model(run_dir, module.model.cpu(), info)
    image_epochs = sum(1 for r in history if StageMode(cfg)(r["epoch"] - 1)[0] == "images")
    params = count_parameters(module.model)
    summary = {
        "best_metric": _kept_metric(cfg, best_ckpt, best_epoch),
        "keep": cfg.train.keep,
        "monitor": cfg.train.monitor,
        "best_epoch": info.extra["best_epoch"],
        "epochs": len(history),
        "fit_seconds": round(elapsed, 1),
        "images_per_second": round(
            _images_per_epoch(cfg, n_train) * max(image_epochs, 1) / max(elapsed, 1e-9), 2
        ),
        "params": params,
        "backbone": info.networks[0].backbone,
        "weights": info.networks[0].weights,
        "input_size": info.input_size,
        "val_metrics": info.metrics,
    }
    atomic_write_text(run_dir / "train_summary.json", json.dumps(summary, indent=2))
    tb = f"tensorboard: tensorboard --logdir {run_dir / 'tb'}\n" if "tensorboard" in cfg.train.loggers else ""
    print(
        f"model: {run_dir / 'model.safetensors'} (+ model.json)\ncurves: {run_dir / 'curves.png'}\n"
        f"metrics: {run_dir / 'metrics.csv'}\n{tb}best {cfg.train.monitor}: {summary['best_metric']}"
    )
    return TrainResult(
        run_dir, summary["best_metric"] or float("nan"), info.metrics, elapsed, summary["images_per_second"]
    )


def _kept_metric(cfg: TrainConfig, best_ckpt, kept: dict | None) -> float | None:  # noqa: ANN001
    """The monitor's value for the saved weights: the best epoch's, or the last epoch's (``keep: last``)."""
    if cfg.train.keep == "last":
        value = (kept or {}).get(cfg.train.monitor)
        return None if value is None or math.isnan(value) else float(value)
    return float(best_ckpt.best_model_score) if best_ckpt.best_model_score is not None else None


def flat_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config as TensorBoard hparams: ``train.batch_size``-style keys, scalars or text."""
    from medxfer.training.tracking import flatten

    ok = (int, float, str, bool)
    flat = flatten(cfg.to_dict())
    return {k: v if isinstance(v, ok) else ("" if v is None else str(v)) for k, v in flat.items()}


def _images_per_epoch(cfg: TrainConfig, n_train: int) -> int:
    cap = cfg.train.max_batches_per_epoch
    return min(n_train, cap * cfg.train.batch_size) if cap else n_train


def _best_row(history: list[dict], monitor: str) -> dict | None:
    rows = [r for r in history if not math.isnan(r.get(monitor, math.nan))]
    if not rows:
        return None
    return (min if direction(monitor) == "minimize" else max)(rows, key=lambda r: r[monitor])


def _resolve_auto_lr(cfg: TrainConfig, data, module, run_dir: Path) -> None:  # noqa: ANN001
    """``lr: auto`` on the first stage: LR range test on its batches, plot saved, rate stored."""
    stage = cfg.stages[0]
    for i, s in enumerate(cfg.stages[1:], 1):
        if s.lr == "auto":
            raise ValueError(f"stages[{i}].lr=auto: only the first stage can use lr: auto")
    if stage.lr != "auto":
        return
    from medxfer.config import save_config
    from medxfer.training.lr_find import lr_range_test

    result = lr_range_test(module, data, stage, run_dir / "lr_find.png")
    stage.lr = float(result["suggestion"])
    print(f"lr: auto -> {stage.lr:.2e} (plot: {run_dir / 'lr_find.png'})")
    save_config(cfg, run_dir / "config.yaml")
