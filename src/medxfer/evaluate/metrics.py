"""Classification metrics as pure numpy functions of ``y_true`` (int, ``(N,)``) and ``proba`` (``(N, C)``).

Conventions (documented edge cases; scikit-learn agrees wherever it defines a value):

- Confusion matrix rows are true classes, columns predicted classes.
- **Precision** of a class that is never predicted is ``0.0`` (scikit-learn's ``zero_division=0``).
- **Recall / sensitivity** of a class absent from ``y_true`` is ``NaN`` (undefined, written as ``null``
  in JSON). **Specificity** is ``NaN`` when every sample belongs to the class (no negatives).
- **F1** per class is ``2 TP / (2 TP + FP + FN)``, ``0.0`` when the denominator is 0.
  **Macro F1** averages over the classes that occur in ``y_true`` or in the predictions (scikit-learn's
  default label set); **weighted F1** weights by support.
- **Balanced accuracy** is the mean recall over classes present in ``y_true``.
- **ROC AUC** of a class (one-vs-rest) is ``NaN`` when the class is absent from ``y_true`` or when every
  sample belongs to it. Binary tasks report the AUC of class 1; more classes report the macro mean of
  the defined one-vs-rest AUCs (undefined ones are excluded). Average precision follows the same rules
  (scikit-learn's step-wise definition, no interpolation).
- **Cohen's kappa** is ``NaN`` when chance agreement is 1 (one class only in labels and predictions).
- **Brier score**: binary = ``mean((P(class 1) - y)^2)`` (scikit-learn's ``brier_score_loss``);
  more classes = mean over samples of the sum over classes of squared errors (range 0..2).
- **ECE**: 15 equal-width bins on the confidence ``max_k p_k``; bin ``b`` holds confidences in
  ``(b/15, (b+1)/15]`` (0 goes to the first bin);
  ECE = sum over bins of ``n_b/N * |accuracy_b - confidence_b|``.
- Binary decisions at a threshold ``t``: predicted class 1 when ``P(class 1) >= t``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 15
LOG_EPS = 1e-12


def _check(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba must be (N, C) with N={y.shape[0]} rows; got shape {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be in 0..{p.shape[1] - 1}; got {y.min()}..{y.max()}")
    return y, p


def predict(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Predicted class per row: argmax, or for binary with ``threshold`` ``P(class 1) >= threshold``.

    Example: ``predict(np.array([[0.6, 0.4]]), threshold=0.3)`` -> ``array([1])``.
    """
    p = np.asarray(proba, dtype=float)
    if threshold is not None:
        if p.shape[1] != 2:
            raise ValueError(f"a decision threshold needs 2 classes; got {p.shape[1]}")
        return (p[:, 1] >= threshold).astype(int)
    return p.argmax(axis=1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int counts; rows = true class, columns = predicted class."""
    y = np.asarray(y_true, dtype=int).ravel()
    yp = np.asarray(y_pred, dtype=int).ravel()
    return np.bincount(y * num_classes + yp, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def _div(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(num.shape, empty, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, specificity, F1 and support from a confusion matrix (see module doc)."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return {
        "precision": _div(tp, tp + fp, 0.0),
        "recall": _div(tp, tp + fn, math.nan),
        "specificity": _div(tn, tn + fp, math.nan),
        "f1": _div(2 * tp, 2 * tp + fp + fn, 0.0),
        "support": (tp + fn).astype(int),
    }


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions (NaN for no samples)."""
    y = np.asarray(y_true).ravel()
    return float(np.mean(y == np.asarray(y_pred).ravel())) if y.size else math.nan


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over classes present in the labels."""
    rec = per_class_stats(cm)["recall"]
    return _mean_defined(rec)


def f1_scores(cm: np.ndarray) -> tuple[float, float]:
    """``(macro_f1, weighted_f1)``; macro over classes in labels or predictions (see module doc)."""
    stats = per_class_stats(cm)
    used = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    macro = float(stats["f1"][used].mean()) if used.any() else math.nan
    support = stats["support"]
    weighted = float((stats["f1"] * support).sum() / support.sum()) if support.sum() else math.nan
    return macro, weighted


def cohen_kappa(cm: np.ndarray) -> float:
    """Cohen's kappa from a confusion matrix; NaN when chance agreement is 1."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum()
    if n == 0:
        return math.nan
    po = np.trace(cm) / n
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum() / n**2)
    return math.nan if pe >= 1.0 else float((po - pe) / (1 - pe))


def _binary_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (TP, FP) counts at each distinct score, thresholds descending (scikit-learn style)."""
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    y = y_bin[order].astype(float)
    last = np.r_[np.where(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last]
    fps = (1 + last) - tps
    return tps, fps, s[last]


def roc_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` for a binary problem; starts at (0, 0) with threshold ``inf``.

    Returns NaN rates when a class is missing. Example: ``roc_curve(np.array([0, 1]), np.array([.2, .8]))``.
    """
    y = np.asarray(y_bin).astype(bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    tps, fps, thr = _binary_curve(y, s)
    tps, fps, thr = np.r_[0, tps], np.r_[0, fps], np.r_[np.inf, thr]
    pos, neg = y.sum(), (~y).sum()
    tpr = tps / pos if pos else np.full(tps.shape, math.nan)
    fpr = fps / neg if neg else np.full(fps.shape, math.nan)
    return fpr, tpr, thr


def roc_auc_binary(y_bin: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN unless both classes are present."""
    fpr, tpr, _ = roc_curve(y_bin, score)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.trapezoid(tpr, fpr))


def precision_recall_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)``; thresholds ascending, last point (precision 1, recall 0)."""
    y = np.asarray(y_bin).astype(bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    tps, fps, thr = _binary_curve(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps.size and tps[-1] else np.full(tps.shape, math.nan)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1]


def average_precision_binary(y_bin: np.ndarray, score: np.ndarray) -> float:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n``; NaN when there is no positive sample."""
    precision, recall, _ = precision_recall_curve(y_bin, score)
    if np.isnan(recall).any():
        return math.nan
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def one_vs_rest(fn: Any, y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Apply a binary score ``fn(y_bin, score)`` to every class against the rest -> ``(C,)``."""
    y, p = _check(y_true, proba)
    return np.array([fn(y == k, p[:, k]) for k in range(p.shape[1])], dtype=float)


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN when none is defined."""
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else math.nan


def _binary_or_macro(fn: Any, y_true: np.ndarray, proba: np.ndarray) -> float:
    """``fn`` of class 1 for binary tasks, else the macro mean of its defined one-vs-rest values."""
    y, p = _check(y_true, proba)
    if p.shape[1] == 2:
        return fn(y == 1, p[:, 1])
    return _mean_defined(one_vs_rest(fn, y, p))


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of class 1. More classes: macro mean of the defined one-vs-rest AUCs (NaN if none)."""
    return _binary_or_macro(roc_auc_binary, y_true, proba)


def average_precision(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AP of class 1. More classes: macro mean of the defined one-vs-rest APs."""
    return _binary_or_macro(average_precision_binary, y_true, proba)


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary: ``mean((p1 - y)^2)``; more classes: mean sum of squared errors over classes."""
    y, p = _check(y_true, proba)
    if p.shape[1] == 2:
        return float(np.mean((p[:, 1] - (y == 1)) ** 2))
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability_bins(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin: ``count``, mean ``confidence`` and ``accuracy`` (NaN for empty bins), ``edges``."""
    y, p = _check(y_true, proba)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    return {
        "count": count.astype(int),
        "confidence": _div(conf_sum, count, math.nan),
        "accuracy": _div(acc_sum, count, math.nan),
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
    }


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (see module doc)."""
    bins = reliability_bins(y_true, proba, n_bins)
    n = bins["count"].sum()
    if n == 0:
        return math.nan
    used = bins["count"] > 0
    gap = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / n * gap))


def sample_log_loss(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy ``-log P(true class)`` (clipped at 1e-12): the "worst cases" ranking."""
    y, p = _check(y_true, proba)
    return -np.log(np.clip(p[np.arange(y.size), y], LOG_EPS, 1.0))


def choose_threshold(y_true: np.ndarray, proba: np.ndarray, method: str = "youden") -> float:
    """Pick a binary decision threshold on ``P(class 1)`` from validation predictions.

    ``method``: ``"youden"`` maximises ``sensitivity + specificity - 1`` (ties: the higher threshold);
    ``"sens:0.95"`` takes the highest threshold whose sensitivity is at least 0.95 (so specificity is
    as high as that allows). The threshold returned is an observed score, used as ``P >= t``.

    Example: ``choose_threshold([0, 0, 1, 1], [[.9, .1], [.6, .4], [.65, .35], [.2, .8]])`` -> ``0.8``.
    """
    y, p = _check(y_true, proba)
    if p.shape[1] != 2:
        raise ValueError(f"threshold selection needs a binary task; got {p.shape[1]} classes")
    fpr, tpr, thr = roc_curve(y == 1, p[:, 1])
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        raise ValueError("threshold selection needs both classes in the validation labels")
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # drop the "predict nothing positive" point (t = inf)
    if method == "youden":
        return float(thr[int(np.argmax(tpr - fpr))])
    if method.startswith("sens:"):
        try:
            target = float(method.split(":", 1)[1])
        except ValueError:
            target = -1.0
        if not 0.0 < target <= 1.0:
            raise ValueError(f"bad threshold method {method!r}: use sens:<target in (0, 1]>, e.g. sens:0.95")
        return float(thr[int(np.argmax(tpr >= target - 1e-12))])
    raise ValueError(f"unknown threshold method {method!r}; valid: youden, sens:<target> (e.g. sens:0.95)")


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def classification_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """All metrics of one evaluation as a JSON-ready dict (NaN -> ``None``).

    Keys: ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``weighted_f1``, ``cohen_kappa``,
    ``roc_auc``, ``average_precision``, ``brier``, ``ece``, ``log_loss``, ``threshold``,
    ``per_class`` ({name: precision, recall, specificity, f1, support, roc_auc, average_precision}),
    ``confusion_matrix`` (list of rows). ``threshold`` (binary only) sets the decision rule.
    """
    y, p = _check(y_true, proba)
    c = p.shape[1]
    names = list(class_names) if class_names is not None else [str(k) for k in range(c)]
    y_pred = predict(p, threshold)
    cm = confusion_matrix(y, y_pred, c)
    stats = per_class_stats(cm)
    macro_f1, weighted_f1 = f1_scores(cm)
    aucs = one_vs_rest(roc_auc_binary, y, p)
    aps = one_vs_rest(average_precision_binary, y, p)
    per_class = {
        name: {
            "precision": _nan_to_none(stats["precision"][k]),
            "recall": _nan_to_none(stats["recall"][k]),
            "specificity": _nan_to_none(stats["specificity"][k]),
            "f1": _nan_to_none(stats["f1"][k]),
            "support": int(stats["support"][k]),
            "roc_auc": _nan_to_none(aucs[k]),
            "average_precision": _nan_to_none(aps[k]),
        }
        for k, name in enumerate(names)
    }
    out: dict[str, Any] = {
        "n": int(y.size),
        "accuracy": accuracy(y, y_pred),
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
        "cohen_kappa": cohen_kappa(cm),
        "roc_auc": roc_auc(y, p),
        "average_precision": average_precision(y, p),
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p),
        "log_loss": float(sample_log_loss(y, p).mean()) if y.size else math.nan,
    }
    out = {k: (v if k == "n" else _nan_to_none(v)) for k, v in out.items()}
    out["threshold"] = threshold
    out["per_class"] = per_class
    out["confusion_matrix"] = cm.tolist()
    return out


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Flatten :func:`classification_metrics` output to ``{"accuracy": .., "recall/<class>": ..}``."""
    flat: dict[str, float | None] = {}
    for key, value in metrics.items():
        if key in ("n", "threshold", "confusion_matrix"):
            continue
        if key == "per_class":
            for name, stats in value.items():
                for stat, v in stats.items():
                    if stat != "support":
                        flat[f"{stat}/{name}"] = v
        else:
            flat[key] = value
    return flat


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """AUC, accuracy, sensitivity, specificity and ECE of one :func:`classification_metrics` result.

    Binary: sensitivity and specificity of class 1 (the positive class). More classes: sensitivity is
    the mean per-class recall (balanced accuracy) and specificity the mean of the defined per-class
    specificities (None when none is defined).
    """
    names = list(metrics["per_class"])
    if len(names) == 2:
        sens = metrics["per_class"][names[1]]["recall"]
        spec = metrics["per_class"][names[1]]["specificity"]
    else:
        sens = metrics["balanced_accuracy"]
        values = np.array(
            [np.nan if v["specificity"] is None else v["specificity"] for v in metrics["per_class"].values()]
        )
        spec = _nan_to_none(_mean_defined(values))
    return {
        "roc_auc": metrics["roc_auc"],
        "accuracy": metrics["accuracy"],
        "sensitivity": sens,
        "specificity": spec,
        "ece": metrics["ece"],
    }
