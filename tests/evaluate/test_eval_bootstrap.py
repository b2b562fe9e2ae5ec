"""Bootstrap CIs: determinism, containment of the point estimate, patient-level resampling."""

from __future__ import annotations

import numpy as np
import pytest

from medxfer.evaluate import metrics as M
from medxfer.evaluate.bootstrap import bootstrap_ci


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    return M.scalar_metrics(M.classification_metrics(y, p, ["neg", "pos"]))


def _case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    return y, np.c_[1 - p1, p1]


def test_deterministic_and_contains_point() -> None:
    y, p = _case(50, 0)
    a = bootstrap_ci(_metrics, y, p, n_boot=200, seed=3)
    b = bootstrap_ci(_metrics, y, p, n_boot=200, seed=3)
    c = bootstrap_ci(_metrics, y, p, n_boot=200, seed=4)
    assert a == b
    assert a["roc_auc"] != c["roc_auc"]
    for key, ci in a.items():
        if ci["value"] is not None:
            assert ci["low"] <= ci["value"] <= ci["high"], key
    assert a["accuracy"]["value"] == pytest.approx(M.accuracy(y, p.argmax(1)))
    assert a["accuracy"]["n_valid"] == 200
    assert 0 < a["roc_auc"]["high"] - a["roc_auc"]["low"] < 0.5


def test_patient_resampling_equals_group_level_bootstrap() -> None:
    """Each patient has 4 identical images: the CI equals the bootstrap of one image per patient."""
    y, p = _case(30, 1)
    pid = np.array([f"p{i:03d}" for i in range(30)])
    y4, p4, pid4 = np.repeat(y, 4), np.repeat(p, 4, axis=0), np.repeat(pid, 4)
    perm = np.random.default_rng(0).permutation(y4.size)  # row order must not matter
    grouped = bootstrap_ci(_metrics, y4[perm], p4[perm], groups=pid4[perm], n_boot=300, seed=7)
    single = bootstrap_ci(_metrics, y, p, groups=None, n_boot=300, seed=7)
    by_image = bootstrap_ci(_metrics, y4, p4, groups=None, n_boot=300, seed=7)
    for key in ("accuracy", "roc_auc", "brier", "ece", "macro_f1"):
        assert grouped[key]["low"] == pytest.approx(single[key]["low"]), key
        assert grouped[key]["high"] == pytest.approx(single[key]["high"]), key
    width = lambda ci: ci["high"] - ci["low"]  # noqa: E731
    # pretending the 120 images are independent gives a too-narrow interval
    assert width(by_image["accuracy"]) < 0.75 * width(grouped["accuracy"])


def test_undefined_metric_is_null_and_replicates_dropped() -> None:
    y = np.array([0, 0, 0, 1])
    p = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.3, 0.7]])
    ci = bootstrap_ci(_metrics, y, p, n_boot=100, seed=0)
    assert ci["roc_auc"]["value"] == 1.0
    assert ci["roc_auc"]["n_valid"] < 100  # resamples without the single positive have no AUC
    one = bootstrap_ci(_metrics, np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]]), n_boot=20)
    assert one["roc_auc"] == {"value": None, "low": None, "high": None, "n_valid": 0}


def test_group_length_mismatch_names_sizes() -> None:
    y, p = _case(5, 0)
    with pytest.raises(ValueError, match="4 entries for 5 samples"):
        bootstrap_ci(_metrics, y, p, groups=np.array(["a"] * 4), n_boot=2)
