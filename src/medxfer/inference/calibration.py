"""Local calibration: adapt a trained model's decision rule to a new site without retraining.

A user with a few dozen labelled local images fits **temperature scaling** (Guo et al. 2017: one
scalar ``T``; probabilities become ``softmax(log p / T)``, which leaves the ranking and so the AUC
unchanged and fixes over- or under-confidence) and/or the binary **threshold** (Youden on the
calibrated probabilities). The local images are split by patient, stratified by class: one part fits,
the other part — never the same images — reports before and after. The result is stored in
``model.json`` (``temperature``, ``threshold``, ``threshold_method``, ``extra["calibration"]``) so every
prediction path (evaluate, predict, serve, the ONNX engine) applies it.

:func:`choose_threshold` stores a threshold chosen on the run's own val split (``--choose-threshold``,
the demo) the same way.

For a sigmoid (one-logit) binary model ``softmax(log p / T)`` equals ``sigmoid(logit / T)``: one rule
for both heads, computed from probabilities alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.evaluate import metrics as M
from medxfer.evaluate.temperature import apply_temperature, fit_temperature

if TYPE_CHECKING:
    from medxfer.data.datasets import ImageTable

FITS = ("both", "temperature", "threshold")


def split_local(table: ImageTable, fraction: float = 0.5, seed: int = 0) -> tuple[ImageTable, ImageTable]:
    """``(fit part, report part)``: ``fraction`` of the images (per class, whole patients) to fit."""
    from medxfer.data.splits import assign_splits

    if not 0 < fraction < 1:
        raise ValueError(f"calibration fraction must be in (0, 1), got {fraction}")
    blank = table.with_table(table.table.assign(split=""))
    parts = assign_splits(blank, val=1.0 - fraction, test=0.0, seed=seed)
    return parts.subset("train"), parts.subset("val")


def _rule_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    names: list[str],
    groups: np.ndarray,
    t: float | None,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    from medxfer.evaluate.bootstrap import bootstrap_ci

    def fn(yy: np.ndarray, pp: np.ndarray) -> dict[str, float | None]:
        out = M.summary_metrics(M.classification_metrics(yy, pp, names, t))
        out["brier"] = M.brier_score(yy, pp)
        return out

    return bootstrap_ci(fn, y, proba, groups=groups, n_boot=n_boot, seed=seed)


def fit_rule(
    y: np.ndarray, proba: np.ndarray, fit: str, temperature: float, threshold: float | None
) -> tuple[float, float | None]:
    """``(temperature, threshold)`` fitted on raw probabilities; what ``fit`` leaves keeps its value."""
    if fit in ("both", "temperature"):
        temperature = fit_temperature(y, proba)
    if threshold is not None and fit in ("both", "threshold"):
        threshold = M.choose_threshold(y, apply_temperature(proba, temperature), "youden")
    return temperature, threshold


def _store(run_dir: str | os.PathLike[str], info: Any, record: dict[str, Any]) -> None:
    """Write the fitted rule into model.json (atomically)."""
    from medxfer.io import atomic_write_text
    from medxfer.runs import MODEL_JSON

    info.temperature = record["temperature"]
    if record["threshold"] is not None:
        info.threshold = float(record["threshold"])
        if record["fit"] != "temperature":
            info.threshold_method = (
                f"youden on local calibration ({record['fit_images']} images of {record['data']})"
            )
    info.extra = {**info.extra, "calibration": record}
    atomic_write_text(Path(run_dir) / MODEL_JSON, info.to_json())


def calibrate_run(
    run_dir: str | os.PathLike[str],
    table: ImageTable,
    source: str,
    fit: str = "both",
    fraction: float = 0.5,
    seed: int = 0,
    batch_size: int = 32,
    tta: bool | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Fit on part of ``table``, store in ``RUN/model.json``, report before/after on the rest.

    ``fit``: ``both`` (binary: temperature then threshold; more classes: temperature), ``temperature``
    or ``threshold`` (binary only). ``source`` names the local data (e.g. its spec) in model.json.
    Returns ``{"temperature", "threshold", "fit_images", "report" (the rest as an ImageTable),
    "before_ci", "after_ci" (CIs on the rest), "fit_paths", ...}``.
    """
    from medxfer.inference.evaluation import model_labels
    from medxfer.inference.predictor import Predictor

    if fit not in FITS:
        raise ValueError(f"unknown calibration fit {fit!r}; valid: {', '.join(FITS)}")
    predictor = Predictor(run_dir)  # the one inference path; fitted on uncalibrated probabilities
    info = predictor.info
    predictor.info = info.model_copy(update={"temperature": 1.0})
    names, binary = list(info.class_names), info.num_classes == 2
    if fit == "threshold" and not binary:
        raise ValueError(
            f"{run_dir}: a threshold is fitted for binary models; this one has {info.num_classes} classes"
        )
    fit_part, rest = split_local(table, fraction, seed)
    p_fit, p_rest = (
        predictor.predict_paths(part.table["path"].astype(str).tolist(), batch_size, tta)
        for part in (fit_part, rest)
    )
    y_rest, old_t = model_labels(rest, names), float(info.threshold) if binary else None
    temperature, threshold = fit_rule(model_labels(fit_part, names), p_fit, fit, info.temperature, old_t)
    groups = rest.table["patient_id"].astype(str).to_numpy()
    before_p, after_p = apply_temperature(p_rest, info.temperature), apply_temperature(p_rest, temperature)
    record = {
        "data": source,
        "fit": fit,
        "fit_images": len(fit_part),
        "fit_patients": int(fit_part.table["patient_id"].nunique()),
        "report_images": len(rest),
        "temperature": temperature,
        "threshold": threshold,
        "before": {"temperature": info.temperature, "threshold": old_t},
    }
    _store(run_dir, info, record)
    return {
        **record,
        "report": rest,
        "fit_paths": fit_part.table["path"].tolist(),
        "before_ci": _rule_metrics(y_rest, before_p, names, groups, old_t, n_boot, seed),
        "after_ci": _rule_metrics(y_rest, after_p, names, groups, threshold, n_boot, seed),
    }


def calibrate_local(
    run_dir: str | os.PathLike[str],
    spec: str,
    task: str | None = None,
    label_map: dict[str, str | None] | None = None,
    leak_check: bool = True,
    drop_unknown: bool = False,
    *,
    fit: str = "both",
    fraction: float = 0.5,
    seed: int = 0,
    batch_size: int = 32,
    tta: bool | None = None,
    n_boot: int = 1000,
) -> tuple[Any, dict[str, Any]]:
    """``evaluate --calibrate-on SPEC``: calibrate on part of the local data (external rows, leaks
    excluded as for any external set) and return ``(EvalSet of the other part, calibration result)``.
    ``fit`` ... ``n_boot``: as for :func:`calibrate_run`.

    The fitted images are written to ``RUN/eval/<set>-calibrated/calibration.json`` with the numbers
    before and after, so a reader can check that the report never scores them.
    """
    import json

    from medxfer.inference.sets import EvalSet, plan_sets
    from medxfer.io import atomic_write_text
    from medxfer.runs import read_model_info

    run = Path(run_dir)
    classes = list(read_model_info(run).class_names)
    local = plan_sets(
        [spec], run / "splits.csv", None, task, label_map, leak_check, classes, drop_unknown=drop_unknown
    )[0]
    if local.kind != "external":
        raise ValueError(
            f"--calibrate-on {spec}: the run was trained on these images; give local data it never saw"
        )
    result = calibrate_run(run, local.table, spec, fit, fraction, seed, batch_size, tta, n_boot)
    scope = f"{local.scope} minus the {result['fit_images']} images the calibration was fitted on"
    rest = EvalSet(
        f"{local.name}-calibrated", "external", result["report"], [spec], scope=scope, leaks=local.leaks
    )
    out = run / "eval" / rest.name
    out.mkdir(parents=True, exist_ok=True)
    saved = {k: v for k, v in result.items() if k != "report"}
    atomic_write_text(out / "calibration.json", json.dumps(saved, indent=2))
    return rest, result


def before_after_lines(result: dict[str, Any]) -> list[str]:
    """A small text table: each metric on the report part before and after calibration."""
    from medxfer.evaluate.report import fmt_ci

    lines = [f"{'metric':<12} {'before':<24} after"]
    for key in ("roc_auc", "accuracy", "sensitivity", "specificity", "ece", "brier"):
        lines.append(
            f"{key:<12} {fmt_ci(result['before_ci'].get(key)):<24} {fmt_ci(result['after_ci'].get(key))}"
        )
    return lines


def choose_threshold(
    run_dir: str | os.PathLike[str],
    table_val: ImageTable,
    method: str = "youden",
    batch_size: int = 32,
    tta: bool | None = None,
) -> float:
    """Choose the binary decision threshold on ``table_val`` (all its rows) and store it in model.json.

    ``method``: ``youden`` or ``sens:<target>`` (see :func:`medxfer.evaluate.metrics.choose_threshold`).
    model.json is rewritten atomically with ``threshold`` and ``threshold_method``. Returns the threshold.
    """
    from medxfer.inference.predictor import Predictor
    from medxfer.io import atomic_write_text
    from medxfer.runs import MODEL_JSON

    if not (Path(run_dir) / MODEL_JSON).is_file():
        raise ValueError(f"{run_dir}: no {MODEL_JSON}; a decision threshold is stored for trained runs only")
    predictor = Predictor(run_dir)
    info = predictor.info
    if info.num_classes != 2:
        raise ValueError(
            f"{run_dir}: threshold choice is for binary models; this one has {info.num_classes} classes"
        )
    from medxfer.inference.evaluation import model_labels

    y = model_labels(table_val, list(info.class_names))
    proba = predictor.predict_paths(table_val.table["path"].astype(str).tolist(), batch_size, tta)
    threshold = M.choose_threshold(y, proba, method)
    info.threshold, info.threshold_method = threshold, method
    atomic_write_text(Path(run_dir) / MODEL_JSON, info.to_json())
    return threshold
