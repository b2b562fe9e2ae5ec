"""Temperature scaling (Guo et al. 2017), pure array math: ``softmax(log p / T)`` and the ``T`` that
minimises the log loss. :mod:`medxfer.inference.calibration` fits it on local images; the one inference
path (:class:`medxfer.inference.predictor.Predictor`) applies the ``temperature`` of ``model.json``.
"""

from __future__ import annotations

import math

import numpy as np

from medxfer.evaluate import metrics as M

T_RANGE = (0.05, 20.0)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row-wise; ``T == 1`` returns ``proba`` unchanged.

    >>> apply_temperature(np.array([[0.2, 0.8]]), 2.0).round(3).tolist()
    [[0.333, 0.667]]
    """
    p = np.asarray(proba, dtype=np.float64)
    if temperature == 1.0:
        return p
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.log(np.clip(p, M.LOG_EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y: np.ndarray, proba: np.ndarray, iters: int = 60) -> float:
    """The ``T`` in ``T_RANGE`` minimising the mean log loss of ``apply_temperature(proba, T)``.

    Golden-section search on ``log T`` (the loss is unimodal in ``1/T``, hence in ``log T``).
    """
    y = np.asarray(y, dtype=int)

    def loss(log_t: float) -> float:
        return float(M.sample_log_loss(y, apply_temperature(proba, math.exp(log_t))).mean())

    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(iters):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))
