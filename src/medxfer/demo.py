"""``medxfer demo``: the whole pipeline on the Kermany chest X-rays in a few minutes on a CPU.

check -> patient-grouped split (train/val/test) -> staged training -> threshold on val ->
evaluation on test -> ``report.html``.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from medxfer.io import atomic_write_text


def default_data() -> Path:
    """``$MEDXFER_SHARED_DATA/kermany`` (``../shared/data/kermany`` when the variable is unset)."""
    from medxfer.io import shared_data_dir

    return shared_data_dir() / "kermany"


def demo_config(data: Path, overrides: list[str] | None = None):  # noqa: ANN201
    """The packaged demo recipe pointed at ``data``."""
    from medxfer.config import load_config

    recipe = resources.files("medxfer") / "configs" / "demo.yaml"
    with resources.as_file(recipe) as path:
        return load_config(path, [f"data.specs=['kermany:{data}']", *(overrides or [])])


def run_demo(data: Path, out: Path, overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Run the demo into ``out`` (a new run folder); returns the test metrics with ``report`` path."""
    from dataclasses import replace

    from medxfer.data.check import run_check
    from medxfer.data.resolve import load_table, split_table
    from medxfer.data.splits import save_splits
    from medxfer.inference.evaluation import choose_threshold, evaluate_run
    from medxfer.train.runner import train_run

    times: dict[str, float] = {}
    t = time.perf_counter()
    cfg = demo_config(data, overrides)
    table = load_table(cfg.data)
    print(f"[1/4] check: {len(table)} images in {data}")
    report = run_check(table, progress=progress)
    for line in report.warnings:
        print(f"  warning: {line}")
    times["check"] = time.perf_counter() - t

    t = time.perf_counter()
    # Copies found by check (Kermany holds byte-identical files) count as one patient when splitting.
    before = dict(zip(table.table["path"], table.table["patient_id"], strict=True))
    split_data = replace(cfg.data, val=0.15, test=0.15, group_duplicates=True)
    table = split_table(table, split_data, duplicate_groups=[g["paths"] for g in report.duplicates])
    changed = int((table.table["patient_id"] != table.table["path"].map(before)).sum())
    out.mkdir(parents=True, exist_ok=False)
    save_splits(table, out / "demo_splits.csv")
    cfg.data.splits = str(out / "demo_splits.csv")
    counts = table.table["split"].value_counts().to_dict()
    print(f"[2/4] split: patient-grouped train/val/test {counts} ({changed} duplicate images grouped)")
    print(f"[3/4] train: {cfg.model.backbone} + {cfg.model.weights} weights, {len(cfg.stages)} stages")
    result = train_run(cfg, out, overwrite=True, progress=progress)
    atomic_write_text(out / "check.json", json.dumps(report.to_dict(), indent=2, default=str))
    times["train"] = time.perf_counter() - t

    t = time.perf_counter()
    threshold = choose_threshold(out, table.subset("val"), "youden")
    print(f"[4/4] evaluate: threshold {threshold:.3f} chosen on val (Youden's J); scoring the test split")
    metrics = evaluate_run(out, table, split="test", n_boot=500)
    times["evaluate"] = time.perf_counter() - t
    metrics["demo_seconds"] = {k: round(v, 1) for k, v in times.items()}
    metrics["val_metrics"] = result.metrics
    atomic_write_text(out / "demo_summary.json", json.dumps(metrics, indent=2, default=str))
    return metrics
