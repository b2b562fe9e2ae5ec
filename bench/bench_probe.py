"""Feature quality of backbone weights: a linear probe on frozen embeddings, one row per weights source.

    python bench/bench_probe.py --weights packaged --weights file:runs/pretrain/xray-s0 [--input-size 224]
        [--config kermany-binary] [--lso-config covid-vs-normal] [--out runs/bench-probe]

Columns per weights source:
- ``probe val AUC (CI)``: logistic regression (medxfer's ``logreg`` classical classifier: C tuned by
  patient-grouped CV on the train rows) on the frozen pooled embeddings of ``--config``'s data, trained on its
  patient-grouped train split, scored on its val split; 95% CI by patient bootstrap (the one metrics path).
- ``probe val acc / bal. acc``: at argmax.
- ``LSO AUC mean / min``: ``medxfer crossval --by source --fast`` of ``--lso-config`` with the same weights:
  a head trained on the frozen embeddings of all sources but one, scored on the held-out source.
Both read the same content-keyed feature cache as ``medxfer features`` (weights identity in the key).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def probe_row(
    config: str, weights: str, input_size: int | None, seed: int, sets: list[str]
) -> dict[str, Any]:
    """Linear-probe metrics of ``weights`` on ``config``'s split (see module docstring)."""
    import pandas as pd

    from medxfer.config import load_config
    from medxfer.data.cache import detect_channels
    from medxfer.data.resolve import resolve_table
    from medxfer.evaluate.bootstrap import bootstrap_ci
    from medxfer.evaluate.metrics import roc_auc
    from medxfer.features.classical import fit_classifier, full_proba
    from medxfer.features.extract import backbone_meta, extract_features

    cfg = load_config(config, [*sets, f"model.weights={weights}"])
    table = resolve_table(cfg.data)
    if cfg.data.limit_per_class:  # quick runs: at most N images per class in every split
        from medxfer.training.pieces import limit_train

        keep = [limit_train(table, cfg.data.limit_per_class, cfg.data.seed, s) for s in ("train", "val")]
        table = table.with_table(pd.concat(keep).reset_index(drop=True))
    channels = cfg.data.channels
    if channels == "auto":
        channels = detect_channels(list(table.table["path"]))
    size = input_size or cfg.model.input_size
    meta = backbone_meta(cfg.model.backbone, weights, size, channels, cfg.data.mask_boxes)
    t0 = time.perf_counter()
    fs = extract_features(table, meta, progress=False)
    embed_s = time.perf_counter() - t0
    result = fit_classifier(fs, "logreg", pca=0, seed=seed)
    val = result.metrics["val"]
    part = fs.subset(fs.splits == "val")
    ci = bootstrap_ci(
        lambda y, p: {"roc_auc": roc_auc(y, p)},
        part.labels,
        full_proba(result.pipeline, part.features, len(fs.class_names)),
        groups=part.groups,
        n_boot=500,
        seed=seed,
    )["roc_auc"]
    return {
        "weights": weights,
        "input_size": meta["input_size"],
        "n_train": int((fs.splits == "train").sum()),
        "n_val": int((fs.splits == "val").sum()),
        "val_auc": val.get("roc_auc"),
        "val_auc_ci": [ci["low"], ci["high"]],
        "val_acc": val.get("accuracy"),
        "val_bal_acc": val.get("balanced_accuracy"),
        "embed_seconds": round(embed_s, 1),
    }


def lso_row(config: str, weights: str, input_size: int | None, out: Path) -> dict[str, Any]:
    """Leave-source-out AUC (mean, min over held-out sources) of a head on frozen embeddings."""
    from medxfer.tuning.crossval import CrossvalOptions, run_crossval

    overrides = [f"model.weights={weights}"]
    if input_size:
        overrides.append(f"model.input_size={input_size}")
    summary = run_crossval(
        CrossvalOptions(config, out, by="source", fast=True, overrides=overrides), log=lambda _m: None
    )
    aucs = [f.get("roc_auc") for f in summary.get("folds", []) if f.get("roc_auc") is not None]
    return {
        "lso_auc_mean": sum(aucs) / len(aucs) if aucs else None,
        "lso_auc_min": min(aucs) if aucs else None,
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list | tuple) and len(v) == 2:
        return f"{v[0]:.3f}-{v[1]:.3f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", action="append", required=True, help="packaged | file:DIR | ... (repeat)")
    p.add_argument("--config", default="kermany-binary")
    p.add_argument("--lso-config", default="covid-vs-normal", help="'' to skip leave-source-out")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="sets", action="append", default=[], help="config override (probe data)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-probe"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, w in enumerate(args.weights):
        row = probe_row(args.config, w, args.input_size, args.seed, args.sets)
        if args.lso_config:
            row.update(lso_row(args.lso_config, w, args.input_size, args.out / f"lso{i}"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "probe.json").write_text(json.dumps(rows, indent=2))
    cols = ["weights", "input_size", "val_auc", "val_auc_ci", "val_acc", "val_bal_acc", "lso_auc_mean"]
    cols += ["lso_auc_min", "embed_seconds"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")


if __name__ == "__main__":
    main()
