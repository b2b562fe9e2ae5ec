"""Classical classifiers on frozen-network features: scikit-learn Pipelines chosen by grouped CV.

Each registered classifier (:mod:`medxfer.features.classifiers`) is a Pipeline
``StandardScaler -> [PCA] -> estimator`` with a small hyper-parameter grid. The grid is searched by
cross-validation on the training split, grouped by patient (``StratifiedGroupKFold``), then every
tuned pipeline is scored on val/test with the same metrics as ``medxfer evaluate``
(:func:`medxfer.evaluate.metrics.classification_metrics`).
The best pipeline is saved with skops (no pickle) next to ``classical.json``.

Example::

    results = run_classical(load_features("feats.npz"), ["logreg", "svm"], out_dir="runs/classical")
    proba = predict_classical("runs/classical", load_features("new.npz").features)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medxfer.features.classifiers import CLASSIFIERS, make_pipeline
from medxfer.features.extract import FeatureSet

MODEL_FILE = "model.skops"
INFO_FILE = "classical.json"


@dataclass
class ClassicalResult:
    """One tuned classifier: its pipeline, CV score, chosen parameters and split metrics."""

    name: str
    pipeline: Any
    cv_score: float
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> classification_metrics
    seconds: float = 0.0


def ensure_splits(fs: FeatureSet, val: float = 0.2, seed: int = 0) -> tuple[FeatureSet, str]:
    """Keep the given splits, else hold out ~``val`` with :func:`~medxfer.data.splits.assign_splits`
    (the one splitter: stratified, grouped by patient). Returns the set and where its split came from."""
    import pandas as pd

    from medxfer.data.datasets import ImageTable
    from medxfer.data.splits import assign_splits

    splits = fs.splits
    if np.isin(splits, ["val", "test"]).any() and (splits == "train").any():
        return fs, "given"
    frame = pd.DataFrame({**fs.columns, "label": fs.labels, "split": ""})
    drawn = assign_splits(ImageTable(list(fs.class_names), frame), val=val, test=0.0, seed=seed)
    cols = {**fs.columns, "split": drawn.table["split"].to_numpy().astype(str)}
    out = FeatureSet(fs.features, fs.labels, fs.class_names, cols, dict(fs.meta))
    return out, f"auto: {val:.0%} of images held out as val, grouped by patient (assign_splits, seed {seed})"


def auc_scorer(estimator: Any, x: np.ndarray, y: np.ndarray) -> float:
    """CV scorer: medxfer's ROC AUC (binary: class 1; more classes: macro one-vs-rest) of
    ``predict_proba``, or of ``decision_function`` for estimators without probabilities (SVC):
    AUC needs only a ranking per class. scikit-learn's ``roc_auc_ovr`` asks every estimator for
    ``predict_proba``, so a multi-class SVM scored NaN. Classes absent from the fold's training
    rows get a constant score."""
    from medxfer.evaluate.metrics import roc_auc

    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(x)
    else:
        scores = estimator.decision_function(x)
        if scores.ndim == 1:  # binary: the positive class's margin
            scores = np.stack([-scores, scores], axis=1)
    known = np.asarray(estimator.classes_, dtype=int)
    full = np.zeros((len(x), max(int(np.max(y)), int(known.max())) + 1))
    full[:, known] = scores
    return roc_auc(y, full)


def _search(name: str, pipe: Any, x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedGroupKFold

    spec = CLASSIFIERS.get(name)
    grid = {f"clf__{k}": v for k, v in spec.grid.items()}
    n_groups = len(np.unique(groups))
    cv = StratifiedGroupKFold(n_splits=max(2, min(folds, n_groups)), shuffle=True, random_state=seed)
    size = int(np.prod([len(v) for v in grid.values()]))
    if spec.n_iter and spec.n_iter < size:
        search = RandomizedSearchCV(
            pipe, grid, n_iter=spec.n_iter, scoring=auc_scorer, cv=cv, random_state=seed
        )
    else:
        search = GridSearchCV(pipe, grid, scoring=auc_scorer, cv=cv, refit=False)
    search.fit(x, y, groups=groups)
    return float(search.best_score_), {k[5:]: v for k, v in search.best_params_.items()}


def fit_classifier(
    fs: FeatureSet, name: str, pca: int | None = None, folds: int = 3, seed: int = 0
) -> ClassicalResult:
    """Tune ``name`` by patient-grouped CV on ``fs``'s train rows, refit, score every other split.

    ``pca``: None = the classifier's default, 0 = off, N = N components.
    """
    from sklearn.base import clone

    from medxfer.evaluate.metrics import classification_metrics

    t0 = time.perf_counter()
    n_pca = CLASSIFIERS.get(name).pca if pca is None else (pca or None)
    train = fs.subset(fs.splits == "train")
    pipe = make_pipeline(name, n_pca, seed, fs.features.shape[1])
    cv_score, params = _search(name, pipe, train.features, train.labels, train.groups, folds, seed)
    final = clone(pipe).set_params(**{f"clf__{k}": v for k, v in params.items()})
    if name == "svm":  # SVC(probability=True) is deprecated: Platt scaling by calibration instead
        from sklearn.calibration import CalibratedClassifierCV

        final.set_params(clf=CalibratedClassifierCV(final.named_steps["clf"], cv=3, ensemble=False))
    final.fit(train.features, train.labels)
    metrics = {}
    for split in ("val", "test"):
        part = fs.subset(fs.splits == split)
        if len(part):
            proba = full_proba(final, part.features, len(fs.class_names))
            metrics[split] = classification_metrics(part.labels, proba, fs.class_names)
    return ClassicalResult(name, final, cv_score, params, metrics, time.perf_counter() - t0)


def full_proba(pipe: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` widened to every class (a class absent from training gets 0)."""
    p = pipe.predict_proba(x)
    out = np.zeros((len(x), n_classes), np.float64)
    out[:, np.asarray(pipe.classes_, int)] = p
    return out


def comparison_rows(results: Sequence[ClassicalResult], split: str) -> list[dict[str, Any]]:
    """One row per classifier: CV AUC and the main metrics on ``split``."""
    rows = []
    for r in results:
        m = r.metrics.get(split, {})
        rows.append(
            {
                "classifier": r.name,
                "cv_auc": round(r.cv_score, 4),
                f"{split}_auc": m.get("roc_auc"),
                f"{split}_balanced_acc": m.get("balanced_accuracy"),
                f"{split}_macro_f1": m.get("macro_f1"),
                f"{split}_accuracy": m.get("accuracy"),
                "seconds": round(r.seconds, 1),
                "params": json.dumps(r.params, sort_keys=True, default=str),
            }
        )
    return rows


def comparison_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """``comparison.md``: the rows as a markdown table (floats to 4 decimals), or "" for no rows."""
    from medxfer.io import markdown_table

    if not rows:
        return ""

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    keys = list(rows[0])
    return markdown_table(keys, [[fmt(r[k]) for k in keys] for r in rows]) + "\n"


def _select_best(results: Sequence[ClassicalResult]) -> ClassicalResult:
    """Highest val AUC (the CV AUC when there is no val split)."""

    def score(r: ClassicalResult) -> float:
        auc = r.metrics.get("val", {}).get("roc_auc")
        return float(auc) if auc is not None else r.cv_score

    return max(results, key=score)


def _bar_plot(rows: Sequence[dict[str, Any]], split: str, path: Path) -> None:
    from medxfer.io import atomic_write_bytes, figure_png, pyplot

    plt = pyplot()

    names = [r["classifier"] for r in rows]
    keys = ["cv_auc", f"{split}_auc", f"{split}_balanced_acc", f"{split}_macro_f1"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 3.6))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        vals = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        ax.bar(np.arange(len(names)) + (j - (len(keys) - 1) / 2) * width, vals, width, label=key)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("score")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"classical classifiers on frozen features ({split})")
    fig.tight_layout()
    atomic_write_bytes(path, figure_png(fig, dpi=110))


def run_classical(
    fs: FeatureSet,
    names: Sequence[str],
    out_dir: str | os.PathLike[str],
    pca: int | None = None,
    folds: int = 3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[ClassicalResult]:
    """Tune, score and compare ``names`` on ``fs``; write the table, plot, best pipeline and json.

    Outputs in ``out_dir``: ``comparison.csv``, ``comparison.md``, ``comparison.png``,
    ``model.skops`` (the best pipeline), ``classical.json`` (classes, feature source, metrics).
    """
    import pandas as pd

    from medxfer.io import atomic_write_text

    out = Path(out_dir)
    fs, split_note = ensure_splits(fs, seed=seed)
    results = []
    for name in names:
        r = fit_classifier(fs, name, pca=pca, folds=folds, seed=seed)
        val_auc = r.metrics.get("val", {}).get("roc_auc")
        log(f"{name}: cv_auc={r.cv_score:.4f} val_auc={val_auc} ({r.seconds:.1f}s)")
        results.append(r)
    split = "val" if any("val" in r.metrics for r in results) else "test"
    rows = comparison_rows(results, split)
    atomic_write_text(out / "comparison.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out / "comparison.md", comparison_markdown(rows))
    _bar_plot(rows, split, out / "comparison.png")
    best = _select_best(results)
    save_classical(best, fs, out, split_note, {r.name: r.metrics for r in results})
    return results


def save_classical(
    best: ClassicalResult, fs: FeatureSet, out: Path, split_note: str, all_metrics: dict[str, Any]
) -> None:
    """Write ``model.skops`` (no pickle) and ``classical.json`` describing it."""
    import skops.io as sio

    from medxfer.io import atomic_write_bytes, atomic_write_text

    atomic_write_bytes(out / MODEL_FILE, sio.dumps(best.pipeline))
    info = {
        "kind": "classical",
        "classifier": best.name,
        "params": {k: v if isinstance(v, int | float | str) else str(v) for k, v in best.params.items()},
        "cv_auc": best.cv_score,
        "class_names": list(fs.class_names),
        "num_features": int(fs.features.shape[1]),
        "feature_source": {k: v for k, v in fs.meta.items() if k not in ("cached_rows", "computed_rows")},
        "splits": split_note,
        "metrics": best.metrics,
        "all_metrics": all_metrics,
    }
    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=2, sort_keys=True, default=str))


# Types a medxfer classical pipeline may contain beyond skops' default trusted set; anything else
# in a model.skops file is refused (a file from elsewhere could name arbitrary callables).
TRUSTED_TYPES = (
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.decomposition._pca.PCA",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.SVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    "numpy.random._mt19937.MT19937",
    "numpy.random.bit_generator.SeedSequence",
    "builtins.slice",
)


def load_classical(run_dir: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The saved pipeline and ``classical.json`` of a ``medxfer classical`` output folder.

    Refuses files naming types outside :data:`TRUSTED_TYPES` (skops' own trusted set aside).
    """
    import skops.io as sio

    d = Path(run_dir)
    info_path, model_path = d / INFO_FILE, d / MODEL_FILE
    if not info_path.is_file() or not model_path.is_file():
        raise FileNotFoundError(f"{d}: not a medxfer classical folder (needs {INFO_FILE} and {MODEL_FILE})")
    data = model_path.read_bytes()
    untrusted = sio.get_untrusted_types(data=data)
    bad = [t for t in untrusted if t not in TRUSTED_TYPES]
    if bad:
        raise ValueError(f"{model_path}: refusing to load untrusted type(s) {bad}")
    pipe = sio.loads(data, trusted=list(untrusted))
    return pipe, json.loads(info_path.read_text())


def predict_classical(run_dir: str | os.PathLike[str], features: np.ndarray) -> np.ndarray:
    """Class probabilities ``(N, C)`` (C = len(class_names) in classical.json) for embeddings ``(N, D)``.

    Make ``features`` with the same network and preprocessing as ``classical.json['feature_source']``
    (e.g. :func:`medxfer.features.extract.backbone_meta` +
    :func:`~medxfer.features.extract.extract_features`).
    """
    pipe, info = load_classical(run_dir)
    x = np.asarray(features, np.float32)
    if x.ndim != 2 or x.shape[1] != info["num_features"]:
        raise ValueError(f"features of shape {x.shape}; this classifier needs (N, {info['num_features']})")
    return full_proba(pipe, x, len(info["class_names"]))
