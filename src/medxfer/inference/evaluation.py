"""``evaluate_run``: judge a run folder on a labelled image table and write ``RUN/eval/<name>/``.

Output files: ``metrics.json`` (all metrics with 95% bootstrap CIs; binary: at the model.json threshold
and at 0.5), ``predictions.csv``, ``confusion_matrix.png``, ``roc.png``, ``pr.png``, ``reliability.png``,
``curves.png`` (copied from the run), ``worst.png`` (highest-loss images with Grad-CAM), ``report.html``
(self-contained) and ``report.md``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.evaluate import metrics as M

if TYPE_CHECKING:
    from torch import nn

    from medxfer.data.datasets import ImageTable
    from medxfer.inference.predictor import Predictor
    from medxfer.runs import ModelInfo


def model_labels(table: ImageTable, class_names: list[str]) -> np.ndarray:
    """Labels of ``table`` as indices into the model's ``class_names`` (matched by name, ignoring case)."""
    from medxfer.data.datasets import DatasetError, unknown_text

    index = {name.casefold(): k for k, name in enumerate(class_names)}
    names = table.table["label_name"].astype(str)
    unknown = names[~names.str.casefold().isin(list(index))]
    if len(unknown):
        counts = {str(k): int(v) for k, v in unknown.value_counts().sort_index().items()}
        raise DatasetError(
            f"labels the model does not know: {unknown_text(counts)} — the model knows "
            f"{', '.join(class_names)}; load the data with the run's task (--task), map them with "
            "--label-map RAW=CLASS or drop them with --drop-unknown"
        )
    return names.str.casefold().map(index).to_numpy(dtype=int)


def select_split(table: ImageTable, split: str | None) -> ImageTable:
    """The rows of ``split`` (None: all rows); raises ValueError naming the splits present if empty."""
    if split is None:
        return table
    sub = table.subset(split)
    if len(sub) == 0:
        present = sorted(set(table.table["split"].replace("", "(none)")))
        raise ValueError(
            f"no images in split {split!r}; splits present: {', '.join(present)} (use --splits FILE)"
        )
    return sub


def evaluate_predictions(
    y: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    groups: np.ndarray | None,
    threshold: float | None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"metrics": classification_metrics, "ci": bootstrap CIs of every scalar}`` for one decision rule."""
    from medxfer.evaluate.bootstrap import bootstrap_ci

    def fn(yy: np.ndarray, pp: np.ndarray) -> dict[str, float | None]:
        return M.scalar_metrics(M.classification_metrics(yy, pp, class_names, threshold))

    return {
        "metrics": M.classification_metrics(y, proba, class_names, threshold),
        "ci": bootstrap_ci(fn, y, proba, groups=groups, n_boot=n_boot, seed=seed),
    }


def build_result(
    y: np.ndarray, proba: np.ndarray, info: ModelInfo, patient_ids: np.ndarray, n_boot: int, seed: int
) -> dict[str, Any]:
    """The ``metrics.json`` content: main rule (model threshold for binary), and 0.5 for binary."""
    names = list(info.class_names)
    n_patients = len(set(patient_ids.tolist()))
    unit = "patient" if n_patients < len(y) else "image"
    binary = len(names) == 2
    threshold = float(info.threshold) if binary else None
    result: dict[str, Any] = {
        "class_names": names,
        "n_images": int(len(y)),
        "n_patients": n_patients,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95, "unit": unit, "method": "percentile"},
        "rule": f"threshold {threshold:.4g} ({info.threshold_method})" if binary else "argmax",
        "threshold": threshold,
        "threshold_method": info.threshold_method if binary else None,
    }
    result.update(evaluate_predictions(y, proba, names, patient_ids, threshold, n_boot, seed))
    if binary:
        same = threshold == 0.5
        result["at_0.5"] = (
            {"metrics": result["metrics"], "ci": result["ci"]}
            if same
            else evaluate_predictions(y, proba, names, patient_ids, 0.5, n_boot, seed)
        )
    return result


def write_predictions(
    path: Path, table: ImageTable, y: np.ndarray, pred: np.ndarray, proba: np.ndarray, class_names: list[str]
) -> None:
    """``predictions.csv``: path, patient_id, source, true, pred, ``p_<class>`` per class."""
    import pandas as pd

    from medxfer.io import atomic_write_text

    df = pd.DataFrame(
        {
            "path": table.table["path"].to_numpy(),
            "patient_id": table.table["patient_id"].to_numpy(),
            "source": table.table["source"].to_numpy(),
            "true": [class_names[i] for i in y],
            "pred": [class_names[i] for i in pred],
        }
    )
    for k, name in enumerate(class_names):
        df[f"p_{name}"] = np.round(proba[:, k], 6)
    atomic_write_text(path, df.to_csv(index=False))


def make_figures(out: Path, run_dir: Path, y: np.ndarray, proba: np.ndarray, result: dict[str, Any]) -> list:
    """Draw the standard pictures into ``out``; returns ``[(caption, file name)]``."""
    from medxfer.evaluate import plots

    names = result["class_names"]
    cm = np.asarray(result["metrics"]["confusion_matrix"])
    figures = [
        (
            f"Confusion matrix ({result['rule']})",
            Path(plots.plot_confusion(cm, names, out / "confusion_matrix.png")),
        ),
        ("ROC curves", Path(plots.plot_roc(y, proba, names, out / "roc.png"))),
        ("Precision-recall curves", Path(plots.plot_pr(y, proba, names, out / "pr.png"))),
        ("Reliability diagram", Path(plots.plot_reliability(y, proba, out / "reliability.png"))),
    ]
    curves = run_dir / "curves.png"
    if curves.is_file():
        shutil.copyfile(curves, out / "curves.png")
        figures.append(("Training curves (from the run)", out / "curves.png"))
    return [(cap, p.name) for cap, p in figures]


def worst_cases(
    model: nn.Module,
    info: ModelInfo,
    table: ImageTable,
    y: np.ndarray,
    proba: np.ndarray,
    pred: np.ndarray,
    n: int,
    out: Path,
) -> tuple[list[dict[str, Any]], str | None]:
    """The ``n`` highest-loss images: rows for the report and ``worst.png`` (image + Grad-CAM of the
    predicted class, i.e. what drove the wrong call)."""
    from medxfer.data.images import read_image
    from medxfer.data.transforms import batch_input
    from medxfer.evaluate.explain import grad_cam, overlay
    from medxfer.evaluate.plots import plot_gallery

    if n <= 0 or len(y) == 0:
        return [], None
    loss = M.sample_log_loss(y, proba)
    idx = np.argsort(-loss, kind="mergesort")[:n]
    paths = [str(table.table["path"].iloc[i]) for i in idx]
    images = [read_image(p) for p in paths]
    cams = np.concatenate(
        [
            grad_cam(
                model, batch_input(images[s : s + 8], info), target=[int(pred[i]) for i in idx[s : s + 8]]
            )
            for s in range(0, len(idx), 8)
        ]
    )
    names = info.class_names
    rows, items = [], []
    for j, i in enumerate(idx):
        row = {
            "file": Path(paths[j]).name,
            "true": names[y[i]],
            "pred": names[pred[i]],
            "p_true": float(proba[i, y[i]]),
            "p_pred": float(proba[i, pred[i]]),
            "loss": float(loss[i]),
        }
        rows.append(row)
        rule = f" (P1>={info.threshold:.2f})" if info.num_classes == 2 and info.threshold != 0.5 else ""
        title = (
            f"{row['file']}\ntrue {row['true']} P={row['p_true']:.2f}\n"
            f"pred {row['pred']}{rule} P={row['p_pred']:.2f}  loss {row['loss']:.2f}"
        )
        items.append(
            {
                "image": images[j],
                "overlay": overlay(images[j], cams[j]),
                "title": title,
                "overlay_title": f"Grad-CAM: {row['pred']}",
            }
        )
    return rows, Path(plot_gallery(items, out / "worst.png")).name


def write_leaks(path: Path, leaks: list[dict[str, str]]) -> None:
    """``leaks.csv`` (path, match, seen_path, seen_split) when there are leaks; a stale one is removed."""
    import pandas as pd

    from medxfer.io import atomic_write_text

    if leaks:
        atomic_write_text(path, pd.DataFrame(leaks).to_csv(index=False))
    elif path.is_file():
        path.unlink()  # written by an earlier evaluation of this folder, not a user's file


def data_counts(table: ImageTable) -> dict[str, dict[str, int]]:
    """Images per class, per source, and patients per class of the evaluated table."""
    df = table.table
    return {
        "images per class": {str(k): int(v) for k, v in df["label_name"].value_counts().sort_index().items()},
        "patients per class": {
            str(k): int(v) for k, v in df.groupby("label_name")["patient_id"].nunique().sort_index().items()
        },
        "images per source and class": {
            f"{s} / {c}": int(v)
            for (s, c), v in df.groupby(["source", "label_name"]).size().sort_index().items()
        },
    }


def _context(
    run: Path, name: str, label: str | None, about: dict[str, Any] | None, leaks: list | None
) -> dict[str, Any]:
    """The report context that does not depend on the predictions (see medxfer.evaluate.report)."""
    from medxfer.evaluate.report import check_warnings

    config = run / "config.yaml"
    return {
        "title": f"medxfer evaluation: {run.name} / {name}",
        "run_dir": str(run),
        "name": name,
        "split": label or "all",
        "about": (about or {}).get("description", ""),
        "generalisation": (about or {}).get("generalisation"),
        "leaks": leaks or [],
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),  # noqa: UP017
        "warnings": check_warnings(run),  # RUN/check.json's, repeated in the report
        "config_text": config.read_text() if config.is_file() else "",
        "summary_text": (run / "summary.txt").read_text() if (run / "summary.txt").is_file() else "",
    }


def _write_tables(
    out: Path,
    sub: ImageTable,
    y: np.ndarray,
    proba: np.ndarray,
    result: dict[str, Any],
    leaks: list[dict[str, str]],
    class_names: list[str],
) -> np.ndarray:
    """``leaks.csv``, ``predictions.csv`` and ``metrics.json`` of one evaluation; returns the predicted
    classes (at ``result["threshold"]``)."""
    from medxfer.io import atomic_write_text

    write_leaks(out / "leaks.csv", leaks)
    pred = M.predict(proba, result["threshold"])
    write_predictions(out / "predictions.csv", sub, y, pred, proba, class_names)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2))
    return pred


def _annotate(
    result: dict[str, Any], run: Path, name: str, split: str | None, tta: bool, sub: ImageTable, about: Any
) -> str | None:
    """Add what was evaluated (run, name, split label, tta, set, images of labels the model does not know
    left out: ``dropped_unknown``) to ``result``; returns the split label."""
    label = split if about is None else about["split"] if about["kind"] == "internal" else "external"
    result.update({"run": str(run), "name": name, "split": label, "tta": tta})
    if about is not None:
        result["set"] = about
    if sub.unknown:
        result["dropped_unknown"] = dict(sub.unknown)
    return label


@dataclass(frozen=True)
class Scoring:
    """How each set of an evaluation is scored: `medxfer evaluate`'s flags, :func:`evaluate_run`'s keywords.

    ``worst``: images in the worst-predicted gallery; ``n_boot``/``seed``: the patient bootstrap; ``stress``
    and ``stress_images``: the shift stress test on a sample of whole patients (0: all); ``progress``: bars.
    """

    worst: int = 12
    batch_size: int = 32
    n_boot: int = 1000
    seed: int = 0
    stress: bool = False
    stress_images: int = 300
    progress: bool = True


def _score(
    predictor: Predictor, sub: ImageTable, tta: bool, batch_size: int, n_boot: int, seed: int, progress: bool
) -> tuple[np.ndarray, list[str], np.ndarray, dict[str, Any]]:
    """Predict the rows of ``sub`` with ``predictor``: (labels, paths, probabilities, metrics with CIs)."""
    info = predictor.info
    y = model_labels(sub, list(info.class_names))
    paths = sub.table["path"].astype(str).tolist()
    proba = predictor.predict_paths(paths, batch_size=batch_size, tta=tta, progress=progress)
    result = build_result(y, proba, info, sub.table["patient_id"].astype(str).to_numpy(), n_boot, seed)
    result["temperature"] = info.temperature
    return y, paths, proba, result


def evaluate_run(
    run_dir: str | os.PathLike[str],
    table: ImageTable,
    split: str | None = "test",
    name: str | None = None,
    tta: bool | None = None,
    worst: int = 12,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = 0,
    about: dict[str, Any] | None = None,
    leaks: list[dict[str, str]] | None = None,
    stress: bool = False,
    stress_images: int = 300,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the model of ``run_dir`` on the rows of ``split`` of ``table`` into ``RUN/eval/<name>/``.

    ``name``: the split (``all`` for None) plus ``-tta`` by default (``tta`` None: the run's ``model.tta``).
    ``about``: what the images are (an :meth:`~medxfer.inference.sets.EvalSet.about` dict); ``leaks``:
    external images left out (``leaks.csv``); ``stress``: also the shift stress test
    (:mod:`medxfer.inference.stress`) on ``stress_images`` images (whole patients per class; 0: all);
    ``progress``: tqdm bars. Returns ``metrics.json``'s dict with ``eval_dir`` and ``report`` (report.html).
    Example: ``evaluate_run("runs/demo", table, "test")``.
    """
    from medxfer.evaluate.report import write_reports
    from medxfer.inference.predictor import Predictor, resolve_tta
    from medxfer.inference.stress import run_stress

    run = Path(run_dir)
    predictor = Predictor(run)  # the one inference path: `evaluate --tta` measures what `predict --tta` does
    info = predictor.info
    tta = resolve_tta(tta, info)
    sub = select_split(table, split)
    name = name or f"{split or 'all'}{'-tta' if tta else ''}"
    out = run / "eval" / name
    out.mkdir(parents=True, exist_ok=True)
    y, paths, proba, result = _score(predictor, sub, tta, batch_size, n_boot, seed, progress)
    label = _annotate(result, run, name, split, tta, sub, about)
    stress_result = None
    if stress:
        sample = (sub.table["patient_id"].astype(str).tolist(), stress_images)
        stress_result = run_stress(predictor, paths, y, out, batch_size, tta, seed, sample, progress)
        result["stress"] = stress_result["summary"]
    pred = _write_tables(out, sub, y, proba, result, leaks or [], list(info.class_names))
    n_worst = worst if predictor.has_cam else 0
    rows, gallery = worst_cases(predictor.model, info, sub, y, proba, pred, n_worst, out)
    ctx = {
        **_context(run, name, label, about, leaks),
        "result": result,
        "figures": make_figures(out, run, y, proba, result),
        "worst": rows,
        "gallery": gallery,
        "counts": data_counts(sub),
        "stress": stress_result,
    }
    html_path, _ = write_reports(ctx, out)
    return {**result, "eval_dir": str(out), "report": str(html_path)}
