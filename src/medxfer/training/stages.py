"""Training stages as configuration: which parameters learn, and at which rate, at each step.

One optimizer holds every parameter from the start, in groups (one per backbone block, then
the head). A stage only switches ``requires_grad`` and sets each group's learning rate, so the
optimizer state survives stage changes and a resumed run sees exactly the same schedule: the
rate is a pure function of (stage, step in stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from medxfer.config import StageConfig


@dataclass
class StagePosition:
    index: int
    stage: StageConfig
    epoch_in_stage: int
    first_epoch: int


def stage_at_epoch(stages: list[StageConfig], epoch: int) -> StagePosition:
    """The stage that global ``epoch`` (0-based) belongs to; the last stage for epochs past the end."""
    start = 0
    active = [(i, s) for i, s in enumerate(stages) if s.epochs > 0]
    for i, s in active:
        if epoch < start + s.epochs:
            return StagePosition(i, s, epoch - start, start)
        start += s.epochs
    i, s = active[-1]
    return StagePosition(i, s, epoch - (start - s.epochs), start - s.epochs)


def stage_boundaries(stages: list[StageConfig]) -> list[tuple[int, str]]:
    """``(first epoch, name)`` of each non-empty stage, for marking curves."""
    out, start = [], 0
    for s in stages:
        if s.epochs > 0:
            out.append((start, s.name))
            start += s.epochs
    return out


def trainable_blocks(stage: StageConfig, n_blocks: int) -> int:
    """How many of the backbone's last blocks learn in ``stage`` (0 = head only)."""
    if stage.trainable == "head":
        return 0
    if stage.trainable == "all":
        return n_blocks
    return min(n_blocks, int(stage.trainable.split(":", 1)[1]))


def param_groups(model: nn.Module) -> list[dict]:
    """Optimizer groups: each backbone block in input-to-output order, then the head (last)."""
    groups, seen = [], set()
    for i, block in enumerate(model.blocks()):
        params = [p for p in block.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        groups.append({"params": params, "name": f"block{i}"})
    rest = [p for p in model.backbone.parameters() if id(p) not in seen]
    if rest:  # parameters outside the listed blocks train with the first block
        groups[0]["params"] = groups[0]["params"] + rest if groups else rest
    groups.append({"params": list(model.head.parameters()), "name": "head"})
    return [g for g in groups if g["params"]]


def group_base_lrs(stage: StageConfig, n_groups: int, lr: float) -> list[float]:
    """Base LR per group: head ``lr``; trainable blocks ``lr*mult*decay^k`` (k counted from the head)."""
    n_blocks = n_groups - 1
    k_train = trainable_blocks(stage, n_blocks)
    rates = []
    for i in range(n_blocks):
        depth_from_top = n_blocks - 1 - i
        if depth_from_top < k_train:
            rates.append(lr * stage.backbone_lr_mult * stage.lr_decay**depth_from_top)
        else:
            rates.append(0.0)
    return rates + [lr]


def apply_trainable(model: nn.Module, stage: StageConfig) -> bool:
    """Set ``requires_grad`` for ``stage``; returns True when the whole backbone is frozen."""
    blocks = model.blocks()
    k = trainable_blocks(stage, len(blocks))
    for p in model.backbone.parameters():
        p.requires_grad_(k == len(blocks))
    for i, block in enumerate(blocks):
        for p in block.parameters():
            p.requires_grad_(i >= len(blocks) - k)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return k == 0


def set_train_modes(model: nn.Module, freeze_bn: bool = False) -> None:
    """Train mode for what learns, eval mode for every backbone layer whose own parameters are all
    frozen: BatchNorm statistics (and dropout) of frozen layers stay those of the weights they came
    with, so a stage leaves the blocks it does not train bit-identical. Call it before each training
    step: modes are set from ``requires_grad`` every time, never inherited from an earlier stage
    (Lightning restores the pre-validation modes, which would carry a head stage's frozen
    backbone into fine-tuning — and a resumed run would then differ from an uninterrupted one).
    ``freeze_bn`` (a stage's ``bn: frozen``): every backbone BatchNorm layer keeps its running
    statistics (eval mode) even where its scale and shift learn."""
    model.train()
    if not any(p.requires_grad for p in model.backbone.parameters()):
        model.backbone.eval()
        return
    if freeze_bn:
        for m in model.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    for block in model.blocks():  # frozen blocks whole (their dropout too)
        params = list(block.parameters())
        if params and not any(p.requires_grad for p in params):
            block.eval()
    for m in model.backbone.modules():  # frozen layers outside the listed blocks (e.g. a stem)
        own = list(m.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            m.eval()


def schedule_factor(kind: str, step: int, total: int, warmup_fraction: float = 0.1) -> float:
    """Multiplier of the base LR at ``step`` of ``total``: onecycle (warm-up + cosine), cosine, constant."""
    if kind == "constant" or total <= 1:
        return 1.0
    progress = min(step / max(total - 1, 1), 1.0)
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    warm = max(warmup_fraction, 1e-6)
    if progress < warm:
        return 0.04 + 0.96 * progress / warm  # one-cycle starts at lr/25
    rest = (progress - warm) / (1 - warm)
    return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * rest))


def set_lrs(optimizer: torch.optim.Optimizer, base: list[float], factor: float) -> None:
    """Apply base rates times the schedule factor to the optimizer's groups (same order)."""
    for group, lr in zip(optimizer.param_groups, base, strict=True):
        group["lr"] = lr * factor
