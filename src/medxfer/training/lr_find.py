"""LR range test (Smith 2017; fastai ``lr_find``): raise the rate exponentially over a few
hundred steps, watch the smoothed loss, suggest the rate where it falls fastest.

The model's weights and the optimizer are restored afterwards: the test changes nothing.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medxfer.config import StageConfig
from medxfer.io import atomic_write_bytes
from medxfer.training.stages import apply_trainable


def suggest_lr(lrs: np.ndarray, losses: np.ndarray) -> float:
    """Rate of the steepest fall of the (smoothed) loss, ignoring the noisy first and last tenth.

    >>> lrs = np.logspace(-5, 0, 50); losses = 1 / (1 + np.exp(4 * (np.log10(lrs) + 2)))
    >>> 1e-3 < suggest_lr(lrs, losses) < 1e-1
    True
    """
    n = len(lrs)
    lo, hi = n // 10, max(n // 10 + 2, n - n // 10)
    grads = np.gradient(losses[lo:hi], np.log10(lrs[lo:hi]))
    return float(lrs[lo + int(np.argmin(grads))])


def lr_range_test(
    module: Any,
    data: Any,
    stage: StageConfig,
    out_png: Path | None = None,
    start: float = 1e-6,
    end: float = 1.0,
    steps: int = 100,
    beta: float = 0.9,
) -> dict[str, Any]:
    """Run the test on the batches of ``stage`` (epoch 0 of the data module); returns
    ``{"lrs", "losses", "suggestion"}`` and writes the plot to ``out_png``."""
    model = module.model
    saved = copy.deepcopy(model.state_dict())
    apply_trainable(model, stage)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=start, weight_decay=0.0)
    model.train()
    if stage.trainable == "head":
        model.backbone.eval()
    loader = data.train_dataloader()
    lrs, losses, avg, best = [], [], 0.0, math.inf
    mult = (end / start) ** (1 / max(steps - 1, 1))
    step, lr = 0, start
    while step < steps:
        for x, y in loader:
            for g in opt.param_groups:
                g["lr"] = lr
            loss = module._loss(module(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            avg = beta * avg + (1 - beta) * float(loss.detach())
            smooth = avg / (1 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            step, lr = step + 1, lr * mult
            if step >= steps or smooth > 4 * best or not math.isfinite(smooth):
                step = steps
                break
    model.load_state_dict(saved)
    result = {"lrs": lrs, "losses": losses, "suggestion": suggest_lr(np.array(lrs), np.array(losses))}
    if out_png is not None:
        atomic_write_bytes(out_png, plot_lr_find(result))
    return result


def plot_lr_find(result: dict[str, Any]) -> bytes:
    """Loss against learning rate (log axis), the suggestion marked; PNG bytes."""
    from medxfer.io import figure_png, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["lrs"], result["losses"])
    ax.axvline(
        result["suggestion"], color="red", linestyle="--", label=f"suggested {result['suggestion']:.1e}"
    )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.legend()
    fig.tight_layout()
    return figure_png(fig, dpi=90)
