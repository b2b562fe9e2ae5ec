"""Side-by-side comparison of run folders (the VGG16 / ResNet / DenseNet / MobileNet / custom CNN table).

One row per run: backbone, weights, parameters, image size, training time and images/s
(``RUN/train_summary.json``: ``seconds``, ``images_per_second``, ``params``), and for every evaluation in
``RUN/eval/<name>/metrics.json`` the main metrics with their 95% bootstrap CI. Every metric column names
its evaluation and split (``test AUC``; ``mine [val] AUC`` when a name is not its split), an evaluation
name that is a different split in two runs gets two columns, and the bar chart shows one evaluation
only: runs without it get no bar, never another split's number. In CSV the numbers are numeric, with
separate ``low``/``high`` columns.
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
        "backbone": " + ".join(n.backbone for n in info.networks),  # an ensemble: its members'
        "weights": " + ".join(dict.fromkeys(n.weights for n in info.networks)),
        "params": _param_count(run, summary),
        "image_size": info.input_size,
        "train_seconds": summary.get("seconds"),
        "images_per_second": summary.get("images_per_second"),
        "evals": evals,
    }


def eval_keys(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(eval name, split)`` of every evaluation of every run: val first, then by name."""
    keys = {(n, str(m.get("split") or "all")) for r in rows for n, m in r["evals"].items()}
    return sorted(keys, key=lambda k: (k[0] != "val", k))


def _label(key: tuple[str, str]) -> str:
    name, split = key
    return name if name in (split, f"{split}-tta") else f"{name} [{split}]"


def _ci_of(row: dict[str, Any], key: tuple[str, str], metric: str) -> dict[str, Any] | None:
    m = row["evals"].get(key[0])
    if m is None or str(m.get("split") or "all") != key[1]:
        return None
    return m.get("ci", {}).get(metric)


def _facts(r: dict[str, Any]) -> list[str]:
    return [
        r["run"],
        r["backbone"],
        r["weights"],
        "" if r["params"] is None else f"{r['params'] / 1e6:.2f}",
        str(r["image_size"]),
        "" if r["train_seconds"] is None else f"{float(r['train_seconds']):.0f}",
        "" if r["images_per_second"] is None else f"{float(r['images_per_second']):.1f}",
    ]


FACTS = ["run", "backbone", "weights", "params (M)", "image size", "train time (s)", "images/s"]


def table_rows(rows: list[dict[str, Any]], numeric: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Header and cells; a metric column per (evaluation, split): ``test AUC`` = AUC on split test.

    ``numeric``: values as numbers with ``<col> low`` / ``<col> high`` columns (for CSV), else
    ``value (low-high)`` text.
    """
    keys = eval_keys(rows)
    header = list(FACTS)
    for key in keys:
        for _, label in METRICS:
            col = f"{_label(key)} {label}"
            header += [col, f"{col} low", f"{col} high"] if numeric else [col]
    out = []
    for r in rows:
        cells: list[Any] = _facts(r)
        for key in keys:
            for metric, _ in METRICS:
                ci = _ci_of(r, key, metric)
                if numeric:
                    cells += [(ci or {}).get(k) for k in ("value", "low", "high")]
                else:
                    cells.append(fmt_ci(ci) if ci is not None else "")
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


def bar_values(rows: list[dict[str, Any]], eval_name: str, metric: str) -> tuple[str, list[dict[str, Any]]]:
    """The split of evaluation ``eval_name`` and each run's CI of ``metric`` in it ({} if it lacks it).

    Raises ValueError when ``eval_name`` is a different split in two runs (never one chart of two splits).
    """
    splits = {str(r["evals"][eval_name].get("split") or "all") for r in rows if eval_name in r["evals"]}
    if len(splits) > 1:
        raise ValueError(
            f"evaluation {eval_name!r} is split {' in one run and '.join(sorted(splits))} in another: "
            "not comparable; choose another --eval"
        )
    split = splits.pop() if splits else eval_name
    return split, [(r["evals"].get(eval_name) or {}).get("ci", {}).get(metric) or {} for r in rows]


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
        split, cis = bar_values(rows, eval_name, metric)
        atomic_write_text(out, render(*table_rows(rows, numeric=fmt == "csv"), fmt))
        plot_metric_bars(
            [r["run"] for r in rows],
            [c.get("value") for c in cis],
            [c.get("low") for c in cis],
            [c.get("high") for c in cis],
            f"{metric} on {_label((eval_name, split))}",
            out.with_suffix(".png"),
        )
    return render(header, cells, "md")
