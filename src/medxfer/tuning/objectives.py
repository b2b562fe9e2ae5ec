"""Trial objectives: the fast one (a head on cached features) and the full one (``train_run``).

Both read the trial's parameters as config overrides (:mod:`medxfer.tuning.space`), report the
monitored validation metric after every epoch and raise ``optuna.TrialPruned`` when the pruner asks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.tuning.space import Dimension, apply_params, suggest

if TYPE_CHECKING:
    import optuna

    from medxfer.config import TrainConfig
    from medxfer.features.extract import FeatureSet


def direction(monitor: str) -> str:
    """``minimize`` for losses, else ``maximize`` (from :mod:`medxfer.evaluate.monitors`)."""
    from medxfer.evaluate.monitors import direction as monitor_direction

    return monitor_direction(monitor)


def _report(trial: optuna.Trial, epoch: int, value: float) -> None:
    import optuna

    trial.report(value, epoch)
    trial.set_user_attr("epochs_run", epoch + 1)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({value:.4f})")


def val_score(monitor: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The monitored metric of probabilities ``proba`` (:func:`medxfer.evaluate.monitors.monitor_score`)."""
    from medxfer.evaluate.monitors import monitor_score

    return monitor_score(monitor, y, proba)


class FastObjective:
    """Head-only training on frozen features, one small torch head per trial (stage 0 of the config).

    Uses the config's first stage (``lr``, ``epochs``), ``train.{weight_decay, label_smoothing,
    batch_size, optimizer, scheduler, imbalance}`` and ``model.head``, as ``medxfer train`` would
    for a head stage without augmentation.
    """

    def __init__(self, fs: FeatureSet, base: TrainConfig, space: list[Dimension], threads: int = 1) -> None:
        import torch

        self.base, self.space, self.threads = base, space, threads
        train, val = fs.splits == "train", fs.splits == "val"
        if not train.any() or not val.any():
            raise ValueError("fast tuning needs train and val rows (give splits or let them be made)")
        self.x = torch.from_numpy(fs.features[train])
        self.y = torch.from_numpy(fs.labels[train])
        self.xv = torch.from_numpy(fs.features[val])
        self.yv = fs.labels[val]
        self.n_classes = len(fs.class_names)

    def __call__(self, trial: optuna.Trial) -> float:
        import torch

        torch.set_num_threads(self.threads)
        cfg = apply_params(self.base, suggest(trial, self.space))
        torch.manual_seed(cfg.train.seed + trial.number)
        return self.train_head(cfg, lambda epoch, value: _report(trial, epoch, value))

    def train_head(self, cfg: TrainConfig, report: Callable[[int, float], None]) -> float:
        """Train the head of ``cfg`` on the train features; returns the best val metric over epochs.

        Optimizer, loss (incl. ``model.output: sigmoid``), class weights and the per-step LR schedule
        are :mod:`medxfer.training.pieces` / :func:`medxfer.training.stages.schedule_factor`, as in a run.
        """
        import torch

        from medxfer.models.backbones import make_head
        from medxfer.training import pieces

        stage, opts, output = cfg.stages[0], cfg.train, cfg.model.output
        lr = float(stage.lr) if stage.lr != "auto" else 1e-3
        head = make_head(self.x.shape[1], pieces.head_outputs(self.n_classes, output), cfg.model.head)
        weight = None
        if opts.imbalance == "class_weights":
            weight = pieces.class_weights(self.y.numpy(), self.n_classes)
        epochs = max(1, stage.epochs)
        total = math.ceil(len(self.y) / int(opts.batch_size)) * epochs
        opt = pieces.make_optimizer(opts, head.parameters(), lr, fused=opts.optimizer != "sgd")
        gen = torch.Generator().manual_seed(opts.seed)
        best, step = None, 0
        for epoch in range(epochs):
            head.train()
            for idx in torch.randperm(len(self.y), generator=gen).split(int(opts.batch_size)):
                self._step(head, opt, idx, (lr, step, total), cfg, weight)
                step += 1
            head.eval()
            with torch.no_grad():
                proba = pieces.logits_to_proba(head(self.xv), output).double().numpy()
            value = val_score(opts.monitor, self.yv, proba)
            better = best is None or (value < best if direction(opts.monitor) == "minimize" else value > best)
            best = value if better else best
            report(epoch, value)
        self.head = head  # the last epoch's head (crossval predicts held-out rows with it)
        return float(best)  # type: ignore[arg-type]

    def _step(
        self, head: Any, opt: Any, idx: Any, when: tuple[float, int, int], cfg: TrainConfig, weight: Any
    ) -> None:
        """One optimizer step on the rows ``idx``; ``when`` = (base lr, step, total steps)."""
        from medxfer.training.pieces import classification_loss
        from medxfer.training.stages import schedule_factor, set_lrs

        lr, step, total = when
        opts = cfg.train
        set_lrs(opt, [lr], schedule_factor(opts.scheduler, step, total, opts.warmup_fraction))
        opt.zero_grad(set_to_none=True)
        logits = head(self.x[idx])
        classification_loss(logits, self.y[idx], cfg.model.output, weight, opts.label_smoothing).backward()
        opt.step()


class FullObjective:
    """One ``train_run`` per trial into ``out_dir/trials/<number>/``, pruned on the per-epoch metric."""

    def __init__(
        self, base: TrainConfig, space: list[Dimension], out_dir: Path, progress: bool = False
    ) -> None:
        self.base, self.space, self.out_dir, self.progress = base, space, Path(out_dir), progress

    def __call__(self, trial: optuna.Trial) -> float:
        from medxfer.training.runner import train_run

        cfg = apply_params(self.base, suggest(trial, self.space))
        cfg.name = f"{self.base.name}-trial{trial.number}"
        run_dir = self.out_dir / "trials" / str(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        monitor = cfg.train.monitor

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            if metrics.get(monitor) is not None:
                _report(trial, epoch, float(metrics[monitor]))

        # The trial folder is ours (numbers are unique per study): overwrite only replaces our files.
        result = train_run(cfg, run_dir, overwrite=True, epoch_callback=on_epoch, progress=self.progress)
        trial.set_user_attr("seconds", round(result.seconds, 1))
        return float(result.best_metric)
