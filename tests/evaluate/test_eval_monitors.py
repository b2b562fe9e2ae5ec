"""One list of metric names read by config validation, tuning, the report headline and compare."""

from __future__ import annotations

import numpy as np
import pytest

from medxfer.config import ConfigError, TrainConfig, validate
from medxfer.evaluate import metrics as M
from medxfer.evaluate.compare import METRICS
from medxfer.evaluate.monitors import METRIC_NAMES, direction, monitor_score, monitors
from medxfer.evaluate.report import HEADLINE
from medxfer.tuning.objectives import direction as tune_direction


def test_every_reader_sees_the_registry() -> None:
    assert monitors() == ["val_acc", "val_auc", "val_f1", "val_loss"]
    assert HEADLINE == [(m.key, m.label) for m in METRIC_NAMES if m.headline]
    assert [k for k, _ in METRICS] == ["roc_auc", "accuracy", "balanced_accuracy", "macro_f1"]
    assert [direction(m) for m in monitors()] == ["maximize"] * 3 + ["minimize"]
    assert tune_direction("val_loss") == "minimize"
    cfg = TrainConfig()
    cfg.train.monitor = "val_kappa"
    with pytest.raises(
        ConfigError, match="train.monitor='val_kappa'; valid: val_acc, val_auc, val_f1, val_loss"
    ):
        validate(cfg)


def test_monitor_scores_are_the_report_formulas() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    proba = np.stack([1 - p1, p1], axis=1)
    report = M.classification_metrics(y, proba, ["a", "b"], 0.5)
    assert monitor_score("val_auc", y, proba) == pytest.approx(report["roc_auc"])
    assert monitor_score("val_acc", y, proba) == pytest.approx(report["accuracy"])
    assert monitor_score("val_f1", y, proba) == pytest.approx(report["macro_f1"])
    assert monitor_score("val_loss", y, proba) == pytest.approx(float(M.sample_log_loss(y, proba).mean()))
    assert monitor_score("val_auc", np.zeros(3, int), proba[:3]) == 0.0  # undefined -> worst
    with pytest.raises(ValueError, match="unknown monitor 'auc'"):
        monitor_score("auc", y, proba)
