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
    import torch

    from medxfer.config import TrainConfig
    from medxfer.features import FeatureSet

MINIMISED = ("val_loss",)


def direction(monitor: str) -> str:
    """``minimize`` for losses, else ``maximize``."""
    return "minimize" if monitor in MINIMISED else "maximize"


def _report(trial: optuna.Trial, epoch: int, value: float) -> None:
    import optuna

    trial.report(value, epoch)
    trial.set_user_attr("epochs_run", epoch + 1)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({value:.4f})")


def val_score(monitor: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The monitored metric (``val_auc``/``val_acc``/``val_f1``/``val_loss``) of probabilities ``proba``."""
    from medxfer.evaluate import metrics as M

    if monitor == "val_auc":
        value = M.roc_auc(y, proba)
    elif monitor == "val_loss":
        value = float(M.sample_log_loss(y, proba).mean())
    elif monitor == "val_acc":
        value = M.accuracy(y, M.predict(proba))
    elif monitor == "val_f1":
        value = M.f1_scores(M.confusion_matrix(y, M.predict(proba), proba.shape[1]))[0]
    else:
        raise ValueError(f"unknown monitor {monitor!r}; valid: val_auc, val_loss, val_acc, val_f1")
    return float(value) if not math.isnan(value) else (math.inf if monitor in MINIMISED else 0.0)


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

    def _optimizer(self, cfg: TrainConfig, params: Any, lr: float) -> torch.optim.Optimizer:
        import torch

        wd = cfg.train.weight_decay
        if cfg.train.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=cfg.train.momentum, weight_decay=wd)
        # fused: one kernel per step instead of several (steps on a tiny head are overhead-bound)
        if cfg.train.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=True)
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=True)

    def _scheduler(self, cfg: TrainConfig, opt: Any, lr: float, total: int) -> Any:
        import torch

        if cfg.train.scheduler == "onecycle" and total > 1:
            pct = min(max(cfg.train.warmup_fraction, 0.01), 0.99)
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=pct)
        if cfg.train.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
        return None

    def train_head(self, cfg: TrainConfig, report: Callable[[int, float], None]) -> float:
        """Train the head of ``cfg`` on the train features; returns the best val metric over epochs."""
        import torch

        from medxfer.models.backbones import make_head

        stage = cfg.stages[0]
        lr = float(stage.lr) if stage.lr != "auto" else 1e-3
        head = make_head(self.x.shape[1], self.n_classes, cfg.model.head)
        weight = None
        if cfg.train.imbalance == "class_weights":
            from medxfer.train.runner import class_weights

            weight = class_weights(self.y.numpy(), self.n_classes)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.train.label_smoothing)
        bs, n = int(cfg.train.batch_size), len(self.y)
        steps = math.ceil(n / bs)
        opt = self._optimizer(cfg, head.parameters(), lr)
        sched = self._scheduler(cfg, opt, lr, steps * max(1, stage.epochs))
        gen = torch.Generator().manual_seed(cfg.train.seed)
        best = None
        for epoch in range(max(1, stage.epochs)):
            head.train()
            for idx in torch.randperm(n, generator=gen).split(bs):
                opt.zero_grad(set_to_none=True)
                loss_fn(head(self.x[idx]), self.y[idx]).backward()
                opt.step()
                if sched is not None:
                    sched.step()
            head.eval()
            with torch.no_grad():
                proba = torch.softmax(head(self.xv), dim=1).double().numpy()
            value = val_score(cfg.train.monitor, self.yv, proba)
            better = best is None or (value < best if cfg.train.monitor in MINIMISED else value > best)
            best = value if better else best
            report(epoch, value)
        self.head = head  # the last epoch's head (crossval predicts held-out rows with it)
        return float(best)  # type: ignore[arg-type]


class FullObjective:
    """One ``train_run`` per trial into ``out_dir/trials/<number>/``, pruned on the per-epoch metric."""

    def __init__(
        self, base: TrainConfig, space: list[Dimension], out_dir: Path, progress: bool = False
    ) -> None:
        self.base, self.space, self.out_dir, self.progress = base, space, Path(out_dir), progress

    def __call__(self, trial: optuna.Trial) -> float:
        from medxfer.train.runner import train_run

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
