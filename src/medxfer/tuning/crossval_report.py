"""The crossval report: one row per held-out fold, the spread over folds, pooled out-of-fold metrics.

Files in the crossval folder: ``crossval.md`` (read this), ``crossval.csv`` (folds + mean/sd/min rows),
``crossval.json`` (everything), ``predictions.csv`` (every held-out image's probabilities and fold).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medxfer.config import TrainConfig
    from medxfer.data.datasets import ImageTable

SPREAD_KEYS = ("roc_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "macro_f1", "ece")


def fold_metrics(
    y: np.ndarray, proba: np.ndarray, groups: np.ndarray, class_names: list[str], n_boot: int, seed: int
) -> dict[str, Any]:
    """Metrics of one held-out fold at 0.5 (binary) / argmax, with patient-bootstrap 95% CIs."""
    from medxfer.evaluate import metrics as M
    from medxfer.inference.evaluation import evaluate_predictions

    threshold = 0.5 if len(class_names) == 2 else None
    res = evaluate_predictions(y, proba, class_names, groups, threshold, n_boot, seed)
    flat = M.scalar_metrics(res["metrics"])
    row: dict[str, Any] = {
        k: flat.get(k) for k in ("roc_auc", "accuracy", "balanced_accuracy", "macro_f1", "ece")
    }
    if len(class_names) == 2:
        pos = class_names[1]
        row["sensitivity"] = flat.get(f"recall/{pos}")
        row["specificity"] = flat.get(f"specificity/{pos}")
    ci = res["ci"]
    row["roc_auc_ci"] = [ci.get("roc_auc", {}).get("low"), ci.get("roc_auc", {}).get("high")]
    row["accuracy_ci"] = [ci.get("accuracy", {}).get("low"), ci.get("accuracy", {}).get("high")]
    return row


def _defined(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def spread(folds: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Per metric: mean, sample sd (ddof 1; None with one fold), min and the number of folds defining it.

    >>> spread([{"roc_auc": 0.9}, {"roc_auc": 0.7}, {"roc_auc": None}])["roc_auc"]
    {'mean': 0.8, 'sd': 0.141421, 'min': 0.7, 'n': 2}
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for key in SPREAD_KEYS:
        vals = _defined([f.get(key) for f in folds])
        if not vals and not any(key in f for f in folds):
            continue
        out[key] = {
            "mean": round(float(np.mean(vals)), 6) if vals else None,
            "sd": round(float(np.std(vals, ddof=1)), 6) if len(vals) > 1 else None,
            "min": round(float(np.min(vals)), 6) if vals else None,
            "n": len(vals),
        }
    return out


def build_summary(
    opts: Any,  # a medxfer.tuning.crossval.CrossvalOptions
    cfg: TrainConfig,
    table: ImageTable,
    fold_of: np.ndarray,
    oof: np.ndarray,
    folds: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``crossval.json`` content (folds, spread, pooled out-of-fold metrics, what was run)."""
    df = table.table
    done = ~np.isnan(oof).any(axis=1)
    pooled = fold_metrics(
        df["label"].to_numpy()[done],
        oof[done],
        df["patient_id"].astype(str).to_numpy()[done],
        list(table.class_names),
        opts.n_boot,
        opts.seed,
    )
    return {
        "config": str(opts.config),
        "name": cfg.name,
        "by": opts.by,
        "n_folds": len(folds),
        "mode": "fast (head on frozen embeddings)" if opts.fast else "full (train_run per fold)",
        "dedup": opts.dedup,
        "rule": "threshold 0.5" if len(table.class_names) == 2 else "argmax",
        "class_names": list(table.class_names),
        "n_images": int(len(df)),
        "folds": folds,
        "spread": spread(folds),
        "pooled": pooled,
        "overrides": list(opts.overrides),
    }


def _f(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _with_ci(row: dict[str, Any], key: str) -> str:
    low, high = row.get(f"{key}_ci") or (None, None)
    if row.get(key) is None or low is None:
        return _f(row.get(key))
    return f"{row[key]:.3f} ({low:.3f}-{high:.3f})"


def markdown(summary: dict[str, Any]) -> str:
    """``crossval.md``: what was run, the fold table, the spread and the pooled line."""
    names = summary["class_names"]
    lines = [
        f"# medxfer crossval: {summary['name']} by {summary['by']}",
        "",
        f"{summary['n_folds']} folds, {summary['mode']}; config `{summary['config']}`; "
        f"decision rule {summary['rule']}; 95% CIs resample patients (bootstrap). "
        + (
            "Near-duplicate images were kept in one fold (copies of held-out images left out of training)."
            if summary["dedup"]
            else "No duplicate check (--no-dedup)."
        ),
        "",
        "| held out | images (" + " / ".join(names) + ") | patients | ROC AUC (95% CI) | accuracy (95% CI) "
        "| sensitivity | specificity | balanced acc. | macro F1 | ECE | trained on | seconds |",
        "|" + "---|" * 12,
    ]
    for r in summary["folds"]:
        per = " / ".join(str(r["per_class"].get(n, 0)) for n in names)
        lines.append(
            f"| {r['fold']} | {r['n_images']} ({per}) | {r['n_patients']} | {_with_ci(r, 'roc_auc')} "
            f"| {_with_ci(r, 'accuracy')} | {_f(r.get('sensitivity'))} | {_f(r.get('specificity'))} "
            f"| {_f(r['balanced_accuracy'])} | {_f(r['macro_f1'])} | {_f(r['ece'])} | {r['n_train']} "
            f"| {r['seconds']} |"
        )
    lines += ["", "## Spread over folds", "", "| metric | mean | sd | min | folds |", "|---|---|---|---|---|"]
    for key, s in summary["spread"].items():
        lines.append(f"| {key} | {_f(s['mean'])} | {_f(s['sd'])} | {_f(s['min'])} | {s['n']} |")
    p = summary["pooled"]
    lines += [
        "",
        f"Pooled out-of-fold ({summary['n_images']} images, every fold's model on its own held-out images): "
        f"ROC AUC {_with_ci(p, 'roc_auc')}, accuracy {_with_ci(p, 'accuracy')}.",
        "",
        "A fold's ROC AUC is n/a when its held-out images hold one class only. A large sd or a low min means "
        "the model's quality depends on where the images come from: expect the low end on new sources.",
    ]
    return "\n".join(lines) + "\n"


def _csv(summary: dict[str, Any]) -> str:
    import pandas as pd

    cols = ["fold", "n_images", "n_patients", *SPREAD_KEYS, "n_train", "left_out", "seconds"]
    rows = [{c: r.get(c) for c in cols} for r in summary["folds"]]
    for stat in ("mean", "sd", "min"):
        rows.append({"fold": stat, **{k: v[stat] for k, v in summary["spread"].items()}})
    rows.append({"fold": "pooled", **{k: summary["pooled"].get(k) for k in SPREAD_KEYS}})
    return pd.DataFrame(rows, columns=cols).to_csv(index=False, float_format="%.6g")


def write_outputs(
    out: Path,
    summary: dict[str, Any],
    table: ImageTable,
    fold_of: np.ndarray,
    names: list[str],
    oof: np.ndarray,
) -> None:
    """Write ``crossval.md``, ``crossval.csv``, ``crossval.json`` and ``predictions.csv`` atomically."""
    import pandas as pd

    from medxfer.io import atomic_write_text

    df = table.table
    preds = pd.DataFrame(
        {
            "path": df["path"].astype(str),
            "source": df["source"].astype(str),
            "patient_id": df["patient_id"].astype(str),
            "fold": [names[k] for k in fold_of],
            "true": df["label_name"].astype(str),
        }
    )
    for k, name in enumerate(table.class_names):
        preds[f"p_{name}"] = np.round(oof[:, k], 6)
    atomic_write_text(out / "predictions.csv", preds.to_csv(index=False))
    atomic_write_text(out / "crossval.json", json.dumps(summary, indent=2, default=_json_default))
    atomic_write_text(out / "crossval.csv", _csv(summary))
    atomic_write_text(out / "crossval.md", markdown(summary))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
