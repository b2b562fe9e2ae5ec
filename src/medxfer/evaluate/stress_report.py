"""The stress test's results as a reader sees them: summary, report table, one-line text, plot, files.

Pure judgement over the rows that :func:`medxfer.inference.stress.stress_test` computes (one row per
shifted set: ``STRESS_COLUMNS``), so the report (:mod:`medxfer.evaluate.report`), ``medxfer evaluate``
and the benches format a result the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SEVERITIES = (1, 2, 3)
STRESS_COLUMNS = ["shift", "severity", "parameter", "roc_auc", "accuracy", "balanced_accuracy", "macro_f1"]
STRESS_COLUMNS += ["ece", "auc_drop"]


def stress_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Stress score (mean AUC over shifted rows), the worst shifted row, and the clean AUC.

    >>> stress_summary([{"shift": "none", "severity": 0, "roc_auc": 0.9, "accuracy": 0.8},
    ...                 {"shift": "blur", "severity": 1, "roc_auc": 0.8, "accuracy": 0.7},
    ...                 {"shift": "blur", "severity": 2, "roc_auc": 0.6, "accuracy": 0.5}])["stress_score"]
    0.7
    """
    clean = next((r for r in rows if r["shift"] == "none"), None)
    shifted = [r for r in rows if r["shift"] != "none" and r.get("roc_auc") is not None]
    out: dict[str, Any] = {
        "clean_auc": clean.get("roc_auc") if clean else None,
        "clean_accuracy": clean.get("accuracy") if clean else None,
        "stress_score": None,
        "mean_accuracy": None,
        "worst": None,
        "n_shifted_sets": len(shifted),
    }
    if shifted:
        out["stress_score"] = round(float(np.mean([r["roc_auc"] for r in shifted])), 6)
        accs = [r["accuracy"] for r in shifted if r.get("accuracy") is not None]
        out["mean_accuracy"] = round(float(np.mean(accs)), 6) if accs else None
        worst = min(shifted, key=lambda r: r["roc_auc"])
        out["worst"] = {k: worst[k] for k in ("shift", "severity", "parameter", "roc_auc") if k in worst}
    return out


def plot_stress(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """One line per shift: ROC AUC against severity, the clean AUC as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    clean = next((r["roc_auc"] for r in rows if r["shift"] == "none"), None)
    for shift in dict.fromkeys(r["shift"] for r in rows if r["shift"] != "none"):
        pts = [
            (r["severity"], r["roc_auc"]) for r in rows if r["shift"] == shift and r["roc_auc"] is not None
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=shift)
    if clean is not None:
        ax.axhline(clean, color="k", linestyle="--", linewidth=1, label="clean")
    ax.set_xticks(list(SEVERITIES))
    ax.set_xlabel("severity")
    ax.set_ylabel("ROC AUC")
    ax.set_title("Stress test: ROC AUC under acquisition shifts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_stress(out: str | Path, result: dict[str, Any]) -> dict[str, Path]:
    """Write ``stress.csv``, ``stress.json`` and ``stress.png`` into ``out`` (atomically for the text)."""
    import pandas as pd

    from medxfer.io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(result["rows"], columns=STRESS_COLUMNS)
    atomic_write_text(out / "stress.csv", df.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "stress.json", json.dumps(result, indent=2))
    return {
        "csv": out / "stress.csv",
        "json": out / "stress.json",
        "png": plot_stress(result["rows"], out / "stress.png"),
    }


def stress_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` for the report: one row per shifted set, metrics to 3 decimals."""

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    header = ["shift", "severity", "amount", "ROC AUC", "AUC drop", "accuracy", "balanced acc.", "ECE"]
    rows = [
        [
            r["shift"],
            str(r["severity"]),
            r["parameter"],
            f(r["roc_auc"]),
            f(r["auc_drop"]),
            f(r["accuracy"]),
            f(r["balanced_accuracy"]),
            f(r["ece"]),
        ]
        for r in result["rows"]
    ]
    return header, rows


def summary_text(summary: dict[str, Any]) -> str:
    """One line: ``stress score 0.951 (mean AUC over 27 shifted sets; clean 0.990); worst: blur 3 ...``."""
    if summary.get("stress_score") is None:
        return "stress score n/a (ROC AUC undefined on these images)"
    w = summary["worst"]
    clean = summary.get("clean_auc")
    clean_txt = "n/a" if clean is None else f"{clean:.3f}"
    return (
        f"stress score {summary['stress_score']:.3f} (mean ROC AUC over {summary['n_shifted_sets']} shifted "
        f"sets{sample_text(summary)}; clean {clean_txt}); worst: {w['shift']} severity {w['severity']} "
        f"({w['parameter']}) "
        f"AUC {w['roc_auc']:.3f}; mean accuracy {_fmt(summary.get('mean_accuracy'))} "
        f"(clean {_fmt(summary.get('clean_accuracy'))})"
    )


def sample_text(summary: dict[str, Any]) -> str:
    """``" on 300 of 1,043 images (a sample: whole patients per class)"`` when sampled, else ``""``."""
    n, total = summary.get("n_images"), summary.get("n_total")
    if n is None or total is None or n >= total:
        return ""
    return f" on {n:,} of {total:,} images (a sample: whole patients per class)"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
