"""Local calibration (issue 15 item 3): temperature scaling math, patient-disjoint fit/report parts."""

from __future__ import annotations

import numpy as np
import pytest

from medxfer.evaluate.temperature import apply_temperature, fit_temperature
from medxfer.inference.calibration import split_local


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_apply_temperature_formula_and_sigmoid_equivalence() -> None:
    p = np.array([[0.2, 0.8], [0.5, 0.5], [0.99, 0.01]])
    out = apply_temperature(p, 2.0)
    expected = np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True)  # p^(1/T), renormalised
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    s = p[:, 1]
    sig = 1 / (1 + np.exp(-np.log(s / (1 - s)) / 2.0))  # sigmoid(logit / T)
    np.testing.assert_allclose(out[:, 1], sig, rtol=1e-12)
    assert apply_temperature(p, 1.0) is not None and np.array_equal(apply_temperature(p, 1.0), p)
    assert (apply_temperature(p, 0.5).argmax(1) == p.argmax(1)).all()  # the ranking is kept
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(p, 0.0)


@pytest.mark.parametrize("k", [0.5, 3.0])
def test_fit_temperature_recovers_the_distortion(k: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (4000, 3))
    y = np.array([rng.choice(3, p=row) for row in _softmax(z)])
    distorted = _softmax(z * k)  # logits k times too large (k > 1: over-confident): T = k undoes it
    assert fit_temperature(y, distorted) == pytest.approx(k, rel=0.1)


def test_split_local_is_patient_disjoint_and_stratified() -> None:
    import pandas as pd

    from medxfer.data.datasets import ImageTable

    rows = [(f"/x/{c}_{i}.png", k, c, f"p{c}{i // 2}") for k, c in enumerate(["a", "b"]) for i in range(20)]
    df = pd.DataFrame(rows, columns=["path", "label", "label_name", "patient_id"])
    df = df.assign(source="s", view="", split="test")
    fit, rest = split_local(ImageTable(["a", "b"], df), 0.5, seed=1)
    assert len(fit) + len(rest) == 40 and not set(fit.table["path"]) & set(rest.table["path"])
    assert not set(fit.table["patient_id"]) & set(rest.table["patient_id"])
    assert set(fit.table["label_name"]) == set(rest.table["label_name"]) == {"a", "b"}
    with pytest.raises(ValueError, match="fraction"):
        split_local(ImageTable(["a", "b"], df), 1.0)
