"""The generalisation table: a model on its own validation/test data and on data it never saw.

Built from evaluation folders (``RUN/eval/<name>/metrics.json`` + ``predictions.csv``), so an
``evaluate`` call with several sets and ``medxfer compare EVAL_DIR...`` give the same table. Rows: each
evaluation (internal val, internal test, each external set) and, where a set mixes sources, each source
inside it. Columns: images, patients, AUC, accuracy, sensitivity, specificity and ECE with patient
bootstrap 95% CIs, and the drop in AUC and accuracy from the internal reference (test if present, else
val). Binary models also get *thresholds under shift*: each set at 0.5, at the threshold chosen on
internal val (the model's own when one was chosen, else Youden on the val predictions), and at the
set's own best (Youden) threshold, which is hindsight: it uses the labels it is scored on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medxfer.evaluate import metrics as M

COLUMNS = [
    ("roc_auc", "AUC"),
    ("accuracy", "accuracy"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("ece", "ECE"),
]
DROPS = ("roc_auc", "accuracy")


@dataclass
class EvalData:
    """One evaluation folder read back: labels, probabilities, patients and sources per image."""

    name: str
    kind: str  # internal | external
    split: str
    description: str
    class_names: list[str]
    y: np.ndarray
    proba: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    threshold: float | None
    threshold_method: str | None
    temperature: float = 1.0


def load_eval(eval_dir: str | os.PathLike[str]) -> EvalData:
    """Read ``metrics.json`` and ``predictions.csv`` of an evaluation folder (errors name the file)."""
    import pandas as pd

    folder = Path(eval_dir)
    for name in ("metrics.json", "predictions.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: not an evaluation folder (no {name}); run medxfer evaluate")
    meta = json.loads((folder / "metrics.json").read_text())
    pred = pd.read_csv(folder / "predictions.csv", dtype={"patient_id": str, "source": str})
    names = list(meta["class_names"])
    missing = [c for c in ["true", *(f"p_{n}" for n in names)] if c not in pred.columns]
    if missing:
        raise ValueError(f"{folder / 'predictions.csv'}: missing column(s) {', '.join(missing)}")
    about = meta.get("set") or {}
    split = str(meta.get("split") or "all")
    return EvalData(
        name=folder.name,
        kind=about.get("kind") or ("external" if split == "external" else "internal"),
        split=split,
        description=about.get("description", ""),
        class_names=names,
        y=pred["true"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=int),
        proba=pred[[f"p_{n}" for n in names]].to_numpy(dtype=float),
        groups=pred["patient_id"].fillna("").astype(str).to_numpy(),
        sources=(pred["source"] if "source" in pred.columns else pd.Series([""] * len(pred)))
        .fillna("")
        .to_numpy(),
        threshold=meta.get("threshold"),
        threshold_method=meta.get("threshold_method"),
        temperature=float(meta.get("temperature", 1.0)),
    )


def _summary(
    ev: EvalData, mask: np.ndarray, threshold: float | None, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Bootstrap CIs (patients resampled) of :func:`metrics.summary_metrics` at one rule."""
    from medxfer.evaluate.bootstrap import bootstrap_ci

    def fn(yy: np.ndarray, pp: np.ndarray) -> dict[str, float | None]:
        return M.summary_metrics(M.classification_metrics(yy, pp, ev.class_names, threshold))

    return bootstrap_ci(fn, ev.y[mask], ev.proba[mask], ev.groups[mask], n_boot=n_boot, seed=seed)


def set_rows(ev: EvalData, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """The set's row at the model's rule, then one row per source when it has several."""
    parts = [("", np.ones(len(ev.y), dtype=bool))]
    sources = sorted(set(ev.sources.tolist()))
    if len(sources) > 1:
        parts += [(s, ev.sources == s) for s in sources]
    rows = []
    for source, mask in parts:
        rows.append(
            {
                "set": ev.name if not source else f"{ev.name} / {source}",
                "kind": ev.kind,
                "split": ev.split,
                "source": source or "all",
                "images": int(mask.sum()),
                "patients": len(set(ev.groups[mask].tolist())),
                "metrics": _summary(ev, mask, ev.threshold, n_boot, seed),
            }
        )
    return rows


def reference(evals: list[EvalData]) -> EvalData | None:
    """The internal evaluation others are compared with: test, else val, else any internal one."""
    internal = [e for e in evals if e.kind == "internal"]
    for split in ("test", "val"):
        for e in internal:
            if e.split == split:
                return e
    return internal[0] if internal else None


def val_threshold(evals: list[EvalData]) -> tuple[float | None, str]:
    """The threshold chosen on internal val: the model's when ``--choose-threshold`` set it, else Youden on
    the val predictions (a threshold from local calibration is not a val choice)."""
    first = evals[0]
    method = first.threshold_method or ""
    if method == "youden" or method.startswith("sens:"):  # set by `evaluate --choose-threshold` on val
        return first.threshold, f"model.json: {method} on internal val"
    val = next((e for e in evals if e.kind == "internal" and e.split == "val"), None)
    if val is None or len(set(val.y.tolist())) < 2:
        return None, "no internal val evaluation"
    return M.choose_threshold(val.y, val.proba, "youden"), "youden on internal val"


def threshold_rows(evals: list[EvalData], n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Binary only: each set at 0.5, at the val-chosen threshold, and at its own (hindsight) optimum."""
    if len(evals[0].class_names) != 2:
        return []
    t_val, how = val_threshold(evals)
    rows = []
    for ev in evals:
        everything = np.ones(len(ev.y), dtype=bool)
        rules: list[tuple[str, float, int]] = [("0.5", 0.5, n_boot)]
        if t_val is not None:
            rules.append((f"val-chosen ({how})", float(t_val), n_boot))
        if len(set(ev.y.tolist())) == 2:
            best = M.choose_threshold(ev.y, ev.proba, "youden")
            rules.append(("HINDSIGHT: best on this set's own labels (youden)", best, 0))
        for rule, t, boots in rules:
            rows.append(
                {
                    "set": ev.name,
                    "kind": ev.kind,
                    "rule": rule,
                    "threshold": t,
                    "metrics": _summary(ev, everything, t, boots, seed),
                }
            )
    return rows


def generalisation(
    eval_dirs: list[str | os.PathLike[str]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The whole table as a JSON-ready dict: ``rows``, ``thresholds``, ``reference``, ``class_names``.

    Example::

        table = generalisation(["runs/kb/eval/val", "runs/kb/eval/test", "runs/kb/eval/external-x"])
    """
    evals = [load_eval(d) for d in eval_dirs]
    if not evals:
        raise ValueError("no evaluation folders given")
    names = evals[0].class_names
    for ev in evals[1:]:
        if ev.class_names != names:
            raise ValueError(f"{ev.name}: classes {ev.class_names} differ from {evals[0].name}: {names}")
    rules = {(e.threshold, e.temperature) for e in evals}
    if len(rules) > 1:
        raise ValueError(
            "these evaluations were made with different decision rules or calibrations "
            f"(threshold, temperature: {sorted(rules, key=str)}); evaluate them again with the current "
            "model.json"
        )
    evals.sort(key=lambda e: (e.kind != "internal", {"val": 0, "test": 1}.get(e.split, 2), e.name))
    ref = reference(evals)
    rows = [row for ev in evals for row in set_rows(ev, n_boot, seed)]
    ref_row = next((r for r in rows if ref is not None and r["set"] == ref.name), None)
    for row in rows:
        for key in DROPS:
            value, base = row["metrics"][key]["value"], (ref_row or {}).get("metrics", {}).get(key, {})
            ok = value is not None and base.get("value") is not None and row is not ref_row
            row[f"{key}_drop"] = float(base["value"] - value) if ok else None
    return {
        "class_names": names,
        "reference": ref.name if ref else None,
        "rule": "argmax" if len(names) != 2 else f"threshold {evals[0].threshold:.4g} (the model's)",
        "descriptions": {e.name: e.description for e in evals if e.description},
        "rows": rows,
        "thresholds": threshold_rows(evals, n_boot, seed),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95, "unit": "patient"},
    }


def _drop(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def text_tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(title, header, rows)`` of the main table and, for binary models, the thresholds table."""
    from medxfer.evaluate.report import fmt_ci

    ref = result["reference"] or "none"
    header = ["set", "kind", "images", "patients", "AUC", f"AUC drop vs {ref}", "accuracy"]
    header += [f"accuracy drop vs {ref}", "sensitivity", "specificity", "ECE"]
    rows = []
    for r in result["rows"]:
        m = r["metrics"]
        ref_mark = "(reference)" if r["set"] == result["reference"] else ""
        rows.append(
            [r["set"], r["kind"], str(r["images"]), str(r["patients"]), fmt_ci(m["roc_auc"])]
            + [
                _drop(r["roc_auc_drop"]) or ref_mark,
                fmt_ci(m["accuracy"]),
                _drop(r["accuracy_drop"]) or ref_mark,
            ]
            + [fmt_ci(m["sensitivity"]), fmt_ci(m["specificity"]), fmt_ci(m["ece"])]
        )
    tables = [(f"Generalisation at {result['rule']} (95% CI, patients resampled)", header, rows)]
    if result["thresholds"]:
        t_header = ["set", "rule", "threshold", "accuracy", "sensitivity", "specificity"]
        t_rows = [
            [t["set"], t["rule"], f"{t['threshold']:.4g}"]
            + [fmt_ci(t["metrics"][k]) for k in ("accuracy", "sensitivity", "specificity")]
            for t in result["thresholds"]
        ]
        tables.append(
            ("Thresholds under shift (the HINDSIGHT rule is not available in use)", t_header, t_rows)
        )
    return tables


def numeric_csv(result: dict[str, Any]) -> str:
    """The main table with numbers only: ``<metric>``, ``<metric>_low``, ``<metric>_high`` columns."""
    import pandas as pd

    records = []
    for r in result["rows"]:
        rec = {k: r[k] for k in ("set", "kind", "split", "source", "images", "patients")}
        for key, _ in COLUMNS:
            ci = r["metrics"][key]
            rec.update({key: ci["value"], f"{key}_low": ci["low"], f"{key}_high": ci["high"]})
        rec.update({f"{k}_drop": r[f"{k}_drop"] for k in DROPS})
        records.append(rec)
    return pd.DataFrame(records).to_csv(index=False)


def render_markdown(result: dict[str, Any], title: str) -> str:
    """The tables as markdown, with the disclaimer and what each set is."""
    from medxfer.evaluate.report import DISCLAIMER
    from medxfer.io import markdown_table

    out = [f"# {title}", "", f"> **{DISCLAIMER}**", ""]
    out += [f"- **{name}**: {text}" for name, text in result["descriptions"].items()]
    for caption, header, rows in text_tables(result):
        out += ["", f"## {caption}", "", markdown_table(header, rows)]
    return "\n".join(out) + "\n"


def render_html(result: dict[str, Any], title: str) -> str:
    """Self-contained HTML page of the same tables (the report's style)."""
    import html

    from medxfer.evaluate.report import CSS, DISCLAIMER, _html_table

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='disclaimer' id='disclaimer'>{html.escape(DISCLAIMER)}</p><ul>",
    ]
    parts += [
        f"<li><b>{html.escape(n)}</b>: {html.escape(t)}</li>" for n, t in result["descriptions"].items()
    ]
    parts.append("</ul>")
    for i, (caption, header, rows) in enumerate(text_tables(result)):
        sid = "generalisation" if i == 0 else "thresholds"
        parts.append(
            f"<section id='{sid}'><h2>{html.escape(caption)}</h2>{_html_table(header, rows)}</section>"
        )
    return "\n".join(parts) + "\n</body></html>\n"


def write_generalisation(
    eval_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    title: str = "medxfer generalisation",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compute :func:`generalisation` and write ``generalisation.json``, ``generalisation.csv``,
    ``report.md`` and ``report.html`` into ``out_dir`` (atomically). Returns the result dict."""
    from medxfer.io import atomic_write_text

    result = generalisation(eval_dirs, n_boot=n_boot, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "generalisation.json", json.dumps(result, indent=2))
    atomic_write_text(out / "generalisation.csv", numeric_csv(result))
    atomic_write_text(out / "report.md", render_markdown(result, title))
    atomic_write_text(out / "report.html", render_html(result, title))
    return {**result, "out_dir": str(out), "report": str(out / "report.html")}


def compare_evals(
    eval_dirs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> str:
    """``medxfer compare EVAL_DIR...``: the generalisation table as markdown; ``out`` .md/.csv/.html.

    Example: ``compare_evals(["runs/kb/eval/val", "runs/kb/eval/external-x"], "gen.html")``.
    """
    from medxfer.io import atomic_write_text

    result = generalisation(eval_dirs, n_boot=n_boot, seed=seed)
    title = "medxfer generalisation"
    if out is not None:
        out = Path(out)
        writers = {".md": lambda: render_markdown(result, title), ".csv": lambda: numeric_csv(result)}
        writers[".html"] = lambda: render_html(result, title)
        if out.suffix.lower() not in writers:
            raise ValueError(f"{out}: unknown table format {out.suffix!r}; use .md, .csv or .html")
        atomic_write_text(out, writers[out.suffix.lower()]())
    return render_markdown(result, title)
