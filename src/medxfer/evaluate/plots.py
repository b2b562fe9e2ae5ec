"""Evaluation pictures (matplotlib, Agg canvas only: no GUI, no global pyplot state).

Every function draws one PNG and writes it atomically; the inputs are plain arrays so they can be
tested without a model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.evaluate import metrics as M

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> str:
    from medxfer.io import atomic_write_bytes, figure_png

    atomic_write_bytes(path, figure_png(fig, tight=True))
    return str(path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str]) -> str:
    """Confusion matrix as counts (left) and row-normalised (right; each true class sums to 1)."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    c = len(class_names)
    fig = _figure(4.0 * 2 + 1.5 + 0.3 * c, 3.5 + 0.3 * c)
    for ax, data, title, fmt in zip(
        fig.subplots(1, 2, gridspec_kw={"wspace": 0.45}),
        (cm, norm),
        ("counts", "row-normalised (recall)"),
        ("{:d}", "{:.2f}"),
        strict=True,
    ):
        ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(c), class_names, rotation=45, ha="right")
        ax.set_yticks(range(c), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        for i in range(c):
            for j in range(c):
                value = int(data[i, j]) if fmt == "{:d}" else float(data[i, j])
                dark = data[i, j] > 0.5 * (data.max() or 1)
                ax.text(j, i, fmt.format(value), ha="center", va="center", color="white" if dark else "black")
    return _save(fig, path)


def _curve_classes(num_classes: int) -> list[int]:
    return [1] if num_classes == 2 else list(range(num_classes))


def _legend(ax, loc: str) -> None:  # noqa: ANN001
    """The legend, or a note when no curve is defined (a set with one class only)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=loc, fontsize=8)
    else:
        ax.text(0.5, 0.5, "undefined: the labels hold one class only", ha="center", fontsize=9)


def plot_roc(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str]
) -> str:
    """ROC curve per class (one-vs-rest; binary: the positive class) with its AUC in the legend."""
    y, p = np.asarray(y_true), np.asarray(proba)
    fig = _figure(5, 4.5)
    ax = fig.subplots()
    for k in _curve_classes(p.shape[1]):
        fpr, tpr, _ = M.roc_curve(y == k, p[:, k])
        if np.isnan(fpr).any() or np.isnan(tpr).any():
            continue
        ax.plot(fpr, tpr, label=f"{class_names[k]} (AUC {M.roc_auc_binary(y == k, p[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=0.8)
    ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)")
    ax.set_title("ROC")
    _legend(ax, "lower right")
    return _save(fig, path)


def plot_pr(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str]
) -> str:
    """Precision-recall curve per class with average precision and the prevalence baseline."""
    y, p = np.asarray(y_true), np.asarray(proba)
    fig = _figure(5, 4.5)
    ax = fig.subplots()
    for k in _curve_classes(p.shape[1]):
        prec, rec, _ = M.precision_recall_curve(y == k, p[:, k])
        if np.isnan(rec).any():
            continue
        ap = M.average_precision_binary(y == k, p[:, k])
        line = ax.step(rec, prec, where="post", label=f"{class_names[k]} (AP {ap:.3f})")
        ax.axhline(float(np.mean(y == k)), ls=":", lw=0.8, color=line[0].get_color())
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall (dotted: prevalence)")
    _legend(ax, "lower left")
    return _save(fig, path)


def plot_reliability(y_true: np.ndarray, proba: np.ndarray, path: str | os.PathLike[str]) -> str:
    """Reliability diagram: accuracy vs confidence per bin (bars), the diagonal, and the bin counts."""
    bins = M.reliability_bins(y_true, proba)
    ece = M.expected_calibration_error(y_true, proba)
    edges = bins["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    fig = _figure(5, 5.5)
    ax, ax_count = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    used = bins["count"] > 0
    ax.bar(centers[used], bins["accuracy"][used], width=np.diff(edges)[used], edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", label="perfect calibration")
    ax.set(ylabel="accuracy", ylim=(0, 1), title=f"Reliability (ECE {ece:.3f}, 15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax_count.bar(centers, bins["count"], width=np.diff(edges), color="gray")
    ax_count.set(xlabel="confidence (max probability)", ylabel="images", xlim=(0, 1))
    return _save(fig, path)


def gallery_figure(items: Sequence[dict[str, Any]], columns: int = 2) -> Figure:
    """The figure of :func:`plot_gallery`; constrained layout keeps each caption clear of the images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(items), 1)
    rows = (n + columns - 1) // columns
    fig = Figure(figsize=(4.2 * columns, 2.9 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, 2 * columns, squeeze=False)).reshape(rows, 2 * columns)
    for ax in axes.ravel():
        ax.axis("off")
    for i, item in enumerate(items):
        r, c = divmod(i, columns)
        img = item["image"]
        axes[r, 2 * c].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        axes[r, 2 * c].set_title(item["title"], fontsize=7, loc="left")
        if item.get("overlay") is not None:
            axes[r, 2 * c + 1].imshow(item["overlay"])
            axes[r, 2 * c + 1].set_title(item.get("overlay_title", "Grad-CAM"), fontsize=7)
    if not items:
        axes[0, 0].text(0.0, 0.5, "no images", fontsize=10)
    return fig


def plot_gallery(items: Sequence[dict[str, Any]], path: str | os.PathLike[str], columns: int = 2) -> str:
    """Worst-case gallery (fastai's plot_top_losses): per item the image and its Grad-CAM overlay.

    Each item: ``image`` (uint8 gray/RGB), ``overlay`` (RGB uint8 or None), ``title`` (str, e.g. file name,
    true/pred labels, P(true), P(pred), loss).
    """
    return _save(gallery_figure(items, columns), path)


def plot_metric_bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    metric: str,
    path: str | os.PathLike[str],
) -> str:
    """Bar per run of ``metric`` with 95% CI error bars (missing values drawn as empty slots)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    lo = np.array([np.nan if x is None else x for x in lows], dtype=float)
    hi = np.array([np.nan if x is None else x for x in highs], dtype=float)
    err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
    fig = _figure(max(4.0, 1.1 * len(labels) + 1.5), 4)
    ax = fig.subplots()
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(v), yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    for xi, vi in zip(x, v, strict=True):
        if not np.isnan(vi):
            ax.text(xi, vi / 2, f"{vi:.3f}", ha="center", color="white", fontsize=8)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set(ylabel=metric, ylim=(0, 1.05), title=f"{metric} with 95% bootstrap CI")
    return _save(fig, path)
