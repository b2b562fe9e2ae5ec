"""The one list of metric names: what reports show, what compare tabulates, what may pick a checkpoint.

Each :class:`MetricName` ties a key of :func:`medxfer.evaluate.metrics.classification_metrics` to its labels
and, for the ones that can steer training (``train.monitor``), the monitor name and how it is computed from
validation probabilities. Config validation, ``medxfer tune`` (direction, fast scores), the report
headline and ``medxfer compare`` all read this list: adding a metric is one entry here (plus its formula in
:mod:`medxfer.evaluate.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medxfer.evaluate import metrics as M


def _loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(M.sample_log_loss(y, proba).mean())


def _acc(y: np.ndarray, proba: np.ndarray) -> float:
    return M.accuracy(y, M.predict(proba))


def _f1(y: np.ndarray, proba: np.ndarray) -> float:
    return M.f1_scores(M.confusion_matrix(y, M.predict(proba), proba.shape[1]))[0]


@dataclass(frozen=True)
class MetricName:
    """One metric: report key and labels; ``monitor`` and ``score`` when it can select checkpoints."""

    key: str  # key in classification_metrics / metrics.json ("" for the loss, which has none)
    label: str  # report headline label
    short: str = ""  # compare-table column ("" = not in compare)
    monitor: str = ""  # train.monitor name ("" = cannot steer training)
    score: Callable[[np.ndarray, np.ndarray], float] | None = None
    higher_is_better: bool = True
    headline: bool = True


METRIC_NAMES: tuple[MetricName, ...] = (
    MetricName("accuracy", "Accuracy", "acc", "val_acc", _acc),
    MetricName("balanced_accuracy", "Balanced accuracy", "bal. acc"),
    MetricName("roc_auc", "ROC AUC", "AUC", "val_auc", M.roc_auc),
    MetricName("average_precision", "Average precision"),
    MetricName("macro_f1", "Macro F1", "macro F1", "val_f1", _f1),
    MetricName("weighted_f1", "Weighted F1"),
    MetricName("cohen_kappa", "Cohen's kappa"),
    MetricName("brier", "Brier score", higher_is_better=False),
    MetricName("ece", "ECE (15 bins)", higher_is_better=False),
    MetricName("", "Log loss", monitor="val_loss", score=_loss, higher_is_better=False, headline=False),
)
COMPARE_ORDER = ("roc_auc", "accuracy", "balanced_accuracy", "macro_f1")


def monitors() -> list[str]:
    """Valid ``train.monitor`` values, e.g. ``["val_acc", "val_auc", "val_f1", "val_loss"]``."""
    return sorted(m.monitor for m in METRIC_NAMES if m.monitor)


def _monitor(name: str) -> MetricName:
    for m in METRIC_NAMES:
        if m.monitor and m.monitor == name:
            return m
    raise ValueError(f"unknown monitor {name!r}; valid: {', '.join(monitors())}")


def direction(monitor: str) -> str:
    """``maximize`` or ``minimize`` (Optuna's words; Lightning's mode is the first 3 letters)."""
    return "maximize" if _monitor(monitor).higher_is_better else "minimize"


def monitor_score(monitor: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The monitored value of validation probabilities; an undefined value counts as the worst."""
    m = _monitor(monitor)
    value = float(m.score(y, proba))  # type: ignore[misc]
    if math.isnan(value):
        return 0.0 if m.higher_is_better else math.inf
    return value


def headline() -> list[tuple[str, str]]:
    """``(key, label)`` rows of the report's headline table."""
    return [(m.key, m.label) for m in METRIC_NAMES if m.headline]


def compare_columns() -> list[tuple[str, str]]:
    """``(key, short label)`` columns of ``medxfer compare``."""
    by_key = {m.key: m for m in METRIC_NAMES}
    return [(k, by_key[k].short) for k in COMPARE_ORDER]
