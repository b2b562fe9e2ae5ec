"""Bootstrap confidence intervals that resample patients, not images.

Images of one patient are correlated; resampling them one by one gives intervals that are too narrow.
:func:`bootstrap_ci` draws *units* with replacement — patients when ``groups`` is given, else images —
and takes every image of each drawn unit. The interval is the percentile interval of the replicates
(replicates where a metric is undefined, e.g. AUC of a resample with one class, are dropped and counted),
widened if needed so that it always contains the point estimate (only very skewed small samples need it).
For a seed the result is deterministic: the draws depend only on ``seed`` and the number of units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float | None]]


def _units(groups: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, lengths)``: rows of unit ``u`` are ``order[starts[u]:starts[u] + lengths[u]]``.

    Units are patients in sorted id order (or one unit per image when ``groups`` is None).
    """
    if groups is None:
        return np.arange(n), np.arange(n), np.ones(n, dtype=int)
    g = np.asarray(groups).astype(str)
    if g.shape[0] != n:
        raise ValueError(f"groups has {g.shape[0]} entries for {n} samples")
    _, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="mergesort")
    lengths = np.bincount(inverse)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return order, starts, lengths


def _draw_rows(draw: np.ndarray, order: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """All rows of the drawn units (vectorised: no Python loop over units)."""
    lens = lengths[draw]
    before = np.r_[0, np.cumsum(lens)[:-1]]
    pos = np.arange(lens.sum()) - np.repeat(before, lens) + np.repeat(starts[draw], lens)
    return order[pos]


def bootstrap_ci(
    metric_fn: MetricFn,
    y_true: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Point estimate and ``level`` percentile CI for every scalar of ``metric_fn(y_true, proba)``.

    Args:
        metric_fn: returns a flat ``{name: float | None}`` (None/NaN = undefined).
        y_true: ``(N,)`` int labels. proba: ``(N, C)`` probabilities.
        groups: ``(N,)`` patient ids; units of resampling (``None``: images).
        n_boot: number of replicates. seed: RNG seed. level: interval coverage.

    Returns:
        ``{name: {"value", "low", "high", "n_valid"}}`` (``low``/``high`` None when undefined).

    Example::

        ci = bootstrap_ci(lambda y, p: {"acc": float((p.argmax(1) == y).mean())}, y, p, groups=pid)
    """
    y = np.asarray(y_true)
    p = np.asarray(proba)
    point = metric_fn(y, p)
    order, starts, lengths = _units(groups, y.shape[0])
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        draw = rng.integers(0, lengths.size, lengths.size)
        idx = _draw_rows(draw, order, starts, lengths)
        values = metric_fn(y[idx], p[idx])
        for key in reps:
            v = values.get(key)
            if v is not None and not math.isnan(v):
                reps[key].append(float(v))
    alpha = (1 - level) / 2
    out: dict[str, dict[str, Any]] = {}
    for key, value in point.items():
        arr = np.asarray(reps[key])
        defined = value is not None and not math.isnan(value) and arr.size > 0
        low = float(np.quantile(arr, alpha)) if defined else None
        high = float(np.quantile(arr, 1 - alpha)) if defined else None
        if defined:
            low, high = min(low, float(value)), max(high, float(value))
        out[key] = {
            "value": None if value is None or math.isnan(value) else float(value),
            "low": low,
            "high": high,
            "n_valid": int(arr.size),
        }
    return out
