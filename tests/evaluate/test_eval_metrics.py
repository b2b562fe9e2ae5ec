"""Metric functions vs hand-computed values and scikit-learn, including the documented edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from medxfer.evaluate import metrics as M


def _rand_case(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, np.round(p, 2)  # rounding makes ties, which the curves must handle like scikit-learn


def test_hand_computed_binary() -> None:
    y = np.array([0, 0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.3, 0.8, 0.4])
    p = np.c_[1 - p1, p1]
    m = M.classification_metrics(y, p, ["neg", "pos"])
    # argmax predictions: 0 1 0 1 0 -> TN=2 FP=1 FN=1 TP=1
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class"]["pos"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["pos"]["recall"] == pytest.approx(0.5)
    assert m["per_class"]["pos"]["specificity"] == pytest.approx(2 / 3)
    assert m["per_class"]["neg"]["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # AUC: pairs (pos, neg): 0.8 beats all 3, 0.4 beats 0.1 and 0.3 -> 5/6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    # AP: ranks 0.8(+) 0.6(-) 0.4(+): recall steps .5 at P=1, .5 at P=2/3
    assert m["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["brier"] == pytest.approx(np.mean((p1 - y) ** 2))
    # kappa: po=.6, pe=(3*3 + 2*2)/25 = 13/25
    assert m["cohen_kappa"] == pytest.approx((0.6 - 13 / 25) / (1 - 13 / 25))
    assert m["per_class"]["pos"]["support"] == 2


def test_threshold_predictions() -> None:
    p = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    assert M.predict(p, 0.3).tolist() == [1, 1, 1]
    assert M.predict(p, 0.5).tolist() == [0, 1, 1]
    assert M.predict(p, 0.81).tolist() == [0, 0, 0]
    m = M.classification_metrics(np.array([0, 0, 1]), p, threshold=0.8)
    assert m["confusion_matrix"] == [[2, 0], [0, 1]] and m["threshold"] == 0.8


@pytest.mark.parametrize("c,seed", [(2, 0), (3, 1), (4, 2)])
def test_matches_sklearn(c: int, seed: int) -> None:
    y, p = _rand_case(60, c, seed)
    yp = p.argmax(1)
    m = M.classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yp))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yp))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, yp, average="macro"))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y, yp, average="weighted"))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, yp))
    prec = skm.precision_score(y, yp, average=None, labels=range(c), zero_division=0)
    rec = skm.recall_score(y, yp, average=None, labels=range(c))
    for k in range(c):
        assert m["per_class"][str(k)]["precision"] == pytest.approx(prec[k])
        assert m["per_class"][str(k)]["recall"] == pytest.approx(rec[k])
        assert m["per_class"][str(k)]["roc_auc"] == pytest.approx(skm.roc_auc_score(y == k, p[:, k]))
        ap = skm.average_precision_score(y == k, p[:, k])
        assert m["per_class"][str(k)]["average_precision"] == pytest.approx(ap)
    if c == 2:
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
        assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p[:, 1]))
    else:
        pn = p / p.sum(1, keepdims=True)
        assert M.roc_auc(y, pn) == pytest.approx(skm.roc_auc_score(y, pn, multi_class="ovr", average="macro"))
        assert m["brier"] == pytest.approx(np.mean(np.sum((p - np.eye(c)[y]) ** 2, 1)))
    assert m["log_loss"] == pytest.approx(
        skm.log_loss(y, p / p.sum(1, keepdims=True), labels=range(c)), rel=0.05
    )


def test_curves_match_sklearn() -> None:
    y, p = _rand_case(40, 2, 5)
    fpr, tpr, thr = M.roc_curve(y == 1, p[:, 1])
    sf, st, _ = skm.roc_curve(y, p[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf)
    np.testing.assert_allclose(tpr, st)
    prec, rec, _ = M.precision_recall_curve(y == 1, p[:, 1])
    sp, sr, _ = skm.precision_recall_curve(y, p[:, 1])
    np.testing.assert_allclose(prec, sp)
    np.testing.assert_allclose(rec, sr)


def test_class_never_predicted_has_precision_zero() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.1, 0.7]]
    )  # class 1 never predicted
    m = M.classification_metrics(y, p, ["a", "b", "c"])
    assert m["per_class"]["b"]["precision"] == 0.0
    assert m["per_class"]["b"]["recall"] == 0.0
    assert m["per_class"]["b"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro", zero_division=0))


def test_class_absent_from_labels_is_null_and_excluded() -> None:
    y = np.array([0, 0, 1, 1])  # class 2 absent from the labels (but predicted once)
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    m = M.classification_metrics(y, p, ["a", "b", "c"])
    assert m["per_class"]["c"]["recall"] is None
    assert m["per_class"]["c"]["roc_auc"] is None
    assert m["per_class"]["c"]["average_precision"] is None
    assert m["per_class"]["c"]["precision"] == 0.0  # predicted once, wrongly
    auc_a = skm.roc_auc_score(y == 0, p[:, 0])
    auc_b = skm.roc_auc_score(y == 1, p[:, 1])
    assert m["roc_auc"] == pytest.approx((auc_a + auc_b) / 2)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p.argmax(1)))
    # binary with one class only: AUC undefined, no crash
    one = M.classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert one["roc_auc"] is None and one["per_class"]["0"]["recall"] is None
    assert math.isnan(M.cohen_kappa(np.array([[0, 0], [0, 3]])))


def test_ece_hand_computed() -> None:
    # confidences .95 (right), .95 (wrong), .6 (right): bins (14/15,1] and (8/15, 9/15]
    y = np.array([0, 1, 0])
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4]])
    expected = 2 / 3 * abs(0.5 - 0.95) + 1 / 3 * abs(1.0 - 0.6)
    assert M.expected_calibration_error(y, p) == pytest.approx(expected)
    bins = M.reliability_bins(y, p)
    assert bins["count"].sum() == 3 and bins["count"][14] == 2 and bins["count"][8] == 1


def test_choose_threshold() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    p = np.c_[1 - p1, p1]
    assert M.choose_threshold(y, p, "youden") == pytest.approx(0.8)
    assert M.choose_threshold(y, p, "sens:0.95") == pytest.approx(0.35)
    assert M.choose_threshold(y, p, "sens:0.5") == pytest.approx(0.8)
    y2, pp = _rand_case(200, 2, 3)
    t = M.choose_threshold(y2, pp, "youden")
    sf, st, _ = skm.roc_curve(y2, pp[:, 1])
    j_at_t = np.mean(pp[y2 == 1, 1] >= t) - np.mean(pp[y2 == 0, 1] >= t)
    assert j_at_t == pytest.approx((st - sf).max())
    with pytest.raises(ValueError, match="youden"):
        M.choose_threshold(y, p, "f1")
    with pytest.raises(ValueError, match="sens:"):
        M.choose_threshold(y, p, "sens:abc")


def test_scalar_metrics_flattens() -> None:
    m = M.classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["n", "p"])
    flat = M.scalar_metrics(m)
    assert flat["recall/p"] == 1.0 and flat["accuracy"] == 1.0 and "support/p" not in flat
