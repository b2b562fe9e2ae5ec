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
    from medxfer.data.leaks import cached_check
    from medxfer.data.resolve import checked_split, load_table
    from medxfer.inference.calibration import choose_threshold
    from medxfer.inference.evaluation import evaluate_run
    from medxfer.training.runner import train_run

    times: dict[str, float] = {}
    t = time.perf_counter()
    cfg = demo_config(data, overrides)
    table = load_table(cfg.data)
    print(f"[1/4] check: {len(table)} images in {data} (its warnings are repeated by train)")
    cached_check(table, progress=progress)  # train reuses this check (cached by the data)
    times["check"] = time.perf_counter() - t

    t = time.perf_counter()
    # The recipe's duplicates policy (group: copies count as one patient) and its train/val/test split;
    # train makes the same split again from the same seed.
    split_table, report = checked_split(table, cfg.data, input_size=cfg.model.input_size, progress=progress)
    counts = split_table.table["split"].value_counts().to_dict()
    crossing = sum(g["cross_split"] for g in report.duplicates)
    print(f"[2/4] split: patient-grouped train/val/test {counts} ({crossing} duplicate groups across splits)")
    print(f"[3/4] train: {cfg.model.backbone} + {cfg.model.weights} weights, {len(cfg.stages)} stages")
    out.mkdir(parents=True, exist_ok=False)
    result = train_run(cfg, out, overwrite=True, progress=progress)
    times["train"] = time.perf_counter() - t

    t = time.perf_counter()
    from medxfer.data.splits import apply_splits

    table = apply_splits(table, out / "splits.csv")
    threshold = choose_threshold(out, table.subset("val"), "youden")
    print(f"[4/4] evaluate: threshold {threshold:.3f} chosen on val (Youden's J); scoring the test split")
    metrics = evaluate_run(out, table, split="test", n_boot=500, progress=progress)
    times["evaluate"] = time.perf_counter() - t
    metrics["demo_seconds"] = {k: round(v, 1) for k, v in times.items()}
    metrics["val_metrics"] = result.metrics
    atomic_write_text(out / "demo_summary.json", json.dumps(metrics, indent=2, default=str))
    return metrics
