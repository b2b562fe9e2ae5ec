"""Side-by-side comparison of run folders (the VGG16 / ResNet / DenseNet / MobileNet / custom CNN table).

One row per run: backbone, weights, parameters, image size, training time and images/s
(``RUN/train_summary.json``: ``seconds``, ``images_per_second``, ``params``), and for every evaluation in
``RUN/eval/<name>/metrics.json`` the main metrics as ``value (low-high)`` with their 95% bootstrap CI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medxfer.evaluate.monitors import compare_columns
from medxfer.evaluate.report import fmt_ci

METRICS = compare_columns()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _param_count(run: Path, summary: dict[str, Any]) -> int | None:
    """Parameters from train_summary.json, else counted from model.safetensors (without BN statistics)."""
    if summary.get("params") is not None:
        return int(summary["params"])
    weights = run / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as fh:
        for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
            if "running_" not in key and "num_batches_tracked" not in key:
                shape = fh.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= d
                total += n
    return total


def run_row(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One comparison row: model facts, training cost and ``evals`` (``{eval name: metrics.json}``)."""
    from medxfer.runs import read_model_info

    run = Path(run_dir)
    info = read_model_info(run)
    summary = _read_json(run / "train_summary.json")
    evals = {p.parent.name: _read_json(p) for p in sorted((run / "eval").glob("*/metrics.json"))}
    return {
        "run": run.name,
        "backbone": info.backbone,
        "weights": info.weights,
        "params": _param_count(run, summary),
        "image_size": info.input_size,
        "train_seconds": summary.get("seconds"),
        "images_per_second": summary.get("images_per_second"),
        "evals": evals,
    }


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells; eval columns are the union over runs (``val AUC``, ``test acc``, ...)."""
    names = sorted({n for r in rows for n in r["evals"]}, key=lambda n: (n != "val", n))
    header = ["run", "backbone", "weights", "params (M)", "image size", "train time (s)", "images/s"]
    header += [f"{n} {label}" for n in names for _, label in METRICS]
    out = []
    for r in rows:
        cells = [
            r["run"],
            r["backbone"],
            r["weights"],
            "" if r["params"] is None else f"{r['params'] / 1e6:.2f}",
            str(r["image_size"]),
            "" if r["train_seconds"] is None else f"{float(r['train_seconds']):.0f}",
            "" if r["images_per_second"] is None else f"{float(r['images_per_second']):.1f}",
        ]
        for n in names:
            ci = r["evals"].get(n, {}).get("ci", {})
            cells += [fmt_ci(ci.get(key)) if n in r["evals"] else "" for key, _ in METRICS]
        out.append(cells)
    return header, out


def render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    """The table as ``md``, ``csv`` or ``html``."""
    from medxfer.evaluate.report import _html_table
    from medxfer.io import markdown_table

    if fmt == "md":
        return markdown_table(header, rows) + "\n"
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows([header, *rows])
        return buf.getvalue()
    if fmt == "html":
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>medxfer compare</title></head><body>"
            f"<h1>Model comparison</h1>{_html_table(header, rows)}</body></html>\n"
        )
    raise ValueError(f"unknown table format {fmt!r}; valid: md, csv, html")


def pick_eval(evals: dict[str, Any], preferred: str) -> dict[str, Any] | None:
    """The evaluation named ``preferred``, else ``test``, else any; None when the run has none."""
    for name in (preferred, "test"):
        if name in evals:
            return evals[name]
    return next(iter(evals.values()), None)


def compare_runs(
    run_dirs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    metric: str = "roc_auc",
    eval_name: str = "test",
) -> str:
    """Build the comparison; write ``out`` (.md/.csv/.html) and a bar chart ``<out stem>.png``.

    Returns the markdown table. Example: ``compare_runs(["runs/vgg16", "runs/resnet50"], "cmp.html")``.
    """
    from medxfer.evaluate.plots import plot_metric_bars
    from medxfer.io import atomic_write_text

    rows = [run_row(r) for r in run_dirs]
    header, cells = table_rows(rows)
    if out is not None:
        out = Path(out)
        fmt = {".md": "md", ".markdown": "md", ".csv": "csv", ".html": "html", ".htm": "html"}.get(
            out.suffix.lower()
        )
        if fmt is None:
            raise ValueError(f"{out}: unknown table format {out.suffix!r}; use .md, .csv or .html")
        atomic_write_text(out, render(header, cells, fmt))
        cis = [(pick_eval(r["evals"], eval_name) or {}).get("ci", {}).get(metric, {}) for r in rows]
        plot_metric_bars(
            [r["run"] for r in rows],
            [c.get("value") for c in cis],
            [c.get("low") for c in cis],
            [c.get("high") for c in cis],
            metric,
            out.with_suffix(".png"),
        )
    return render(header, cells, "md")
