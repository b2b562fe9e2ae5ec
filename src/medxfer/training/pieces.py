"""Training pieces shared by ``medxfer train`` (Lightning) and ``medxfer tune --fast`` (a bare head loop).

Optimizer, loss (softmax or sigmoid output, label smoothing, class weights), probabilities of logits,
the per-step LR factor (:func:`medxfer.training.stages.schedule_factor`), the model.json record of a config
and the result of a run. One definition each, so a fast trial trains a head the way a run would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from medxfer.config import TrainConfig, TrainOptions
    from medxfer.runs import ModelInfo


@dataclass
class TrainResult:
    """What :func:`medxfer.training.runner.train_run` returns."""

    run_dir: Path
    best_metric: float
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0


def make_optimizer(
    opts: TrainOptions, params: Any, lr: float = 1e-3, fused: bool | None = None
) -> torch.optim.Optimizer:
    """``train.optimizer`` (adamw | adam | sgd) with ``train.weight_decay`` (and momentum for sgd).

    ``fused=True`` (Adam/AdamW) runs one kernel per step: worth it for tiny heads, where steps are
    overhead-bound.
    """
    import torch

    if opts.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=opts.momentum, weight_decay=opts.weight_decay)
    cls = torch.optim.AdamW if opts.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=opts.weight_decay, fused=fused)


def classification_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    output: str,
    weight: torch.Tensor | None = None,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy for ``softmax`` heads; for ``sigmoid`` (one logit) binary cross-entropy with the
    smoothed target and ``pos_weight = weight[1] / weight[0]``."""
    import torch.nn.functional as F

    if output == "sigmoid":
        target = y.float() * (1 - smoothing) + 0.5 * smoothing
        pos_weight = weight[1] / weight[0] if weight is not None else None
        return F.binary_cross_entropy_with_logits(logits.squeeze(1), target, pos_weight=pos_weight)
    return F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)


def logits_to_proba(logits: torch.Tensor, output: str) -> torch.Tensor:
    """``(B, C)`` probabilities: softmax, or ``[1 - p, p]`` of a sigmoid head's one logit."""
    import torch

    if output == "sigmoid":
        p = torch.sigmoid(logits.squeeze(1))
        return torch.stack([1 - p, p], dim=1)
    return logits.softmax(dim=1)


def head_outputs(num_classes: int, output: str) -> int:
    """Logits a head produces: 1 for a sigmoid (binary) head, else one per class."""
    return 1 if output == "sigmoid" else num_classes


def class_weights(labels: np.ndarray, n: int) -> torch.Tensor:
    """Inverse-frequency class weights, mean 1 (absent classes get weight 0)."""
    import torch

    counts = np.bincount(labels, minlength=n).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n, 0.0)
    return torch.tensor(w, dtype=torch.float32)


def limit_train(table, limit: int | None, seed: int, split: str = "train"):  # noqa: ANN001, ANN201
    """Rows of ``split``, at most ``limit`` per class (a seeded, patient-agnostic sample)."""
    train = table.table[table.table["split"] == split]
    if limit:
        train = train.sample(frac=1.0, random_state=seed).groupby("label").head(limit)
    return train.sort_values("path")


def build_info(cfg: TrainConfig, class_names: list[str], channels: str) -> ModelInfo:
    """Preprocessing that travels with the weights (size, mean, std) + the task, as ``model.json``."""
    from medxfer.runs import ModelInfo

    return ModelInfo.for_backbone(
        cfg.model.backbone,
        cfg.model.weights,
        class_names,
        cfg.model.input_size,
        channels=channels,
        head=dict(cfg.model.head),
        output=cfg.model.output,
        mask_boxes=[list(b) for b in cfg.data.mask_boxes],
        preprocess=cfg.model.preprocess,
        tta=cfg.model.tta,
    )


def is_ddp_child() -> bool:
    """True in the processes Lightning's DDP launcher starts for local ranks > 0 or other nodes."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0
