"""Frozen features + classical classifiers on the real Kermany copy (5,216 X-rays), timed.

    python bench/bench_classical.py [--backbone efficientnet_lite0] [--weights packaged]
        [--input-size N] [--threads 1] [--classifiers logreg,svm,rf,knn,gboost] [--cache DIR]
        [--features FILE]

Step 1 runs ``medxfer features`` (decode, resize, frozen network) into a features file, step 2
``medxfer classical`` (patient-grouped CV on the train split, scored on held-out patients).
A ``--cache`` folder that already holds these embeddings makes step 1 a lookup; give a fresh
one (default: a new temporary folder) to time the extraction. Prints the timing table and the
classifier table, and checks logistic regression's patient-grouped val AUC >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--weights", default="packaged")
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--classifiers", default="logreg,svm,rf,knn,gboost")
    ap.add_argument("--cache", default=None, help="MEDXFER_CACHE folder (default: a fresh temporary one)")
    ap.add_argument(
        "--out", default=None, help="folder for the features file and results (default: temporary)"
    )
    args = ap.parse_args()

    os.environ["MEDXFER_CACHE"] = args.cache or tempfile.mkdtemp(prefix="medxfer-cache-")
    import torch

    from medxfer.data.datasets import load_datasets
    from medxfer.data.resolve import resolve_channels
    from medxfer.features.classical import run_classical
    from medxfer.features.classifiers import parse_classifiers
    from medxfer.features.extract import backbone_meta, extract_features, save_features

    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("MEDXFER_SHARED_DATA", REPO.parent / "shared" / "data")) / "kermany"
    if not data.is_dir():
        print(f"no Kermany copy at {data} (set MEDXFER_SHARED_DATA)", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="medxfer-classical-"))
    t0 = time.perf_counter()
    table = load_datasets([f"kermany:{data}"], task="kermany-binary")
    channels = resolve_channels("auto", list(table.table["path"]))
    meta = backbone_meta(args.backbone, args.weights, args.input_size, channels)
    t1 = time.perf_counter()
    fs = extract_features(table, meta, batch_size=args.batch_size)
    save_features(fs, out / "features.npz")
    t2 = time.perf_counter()
    results = run_classical(fs, parse_classifiers(args.classifiers), out / "classical", seed=0)
    t3 = time.perf_counter()

    computed = fs.meta["computed_rows"]
    rows = [
        ("list + split images", t1 - t0, ""),
        (
            f"features {args.backbone}@{meta['input_size']} ({computed} computed)",
            t2 - t1,
            f"{computed / (t2 - t1):.1f} img/s" if computed else "cached",
        ),
        (f"classical ({len(results)} classifiers)", t3 - t2, ""),
        ("total", t3 - t0, ""),
    ]
    print(
        f"\n{len(fs)} images, {fs.features.shape[1]} features, threads={args.threads}, cpus={os.cpu_count()}"
    )
    print("| step | seconds | rate |\n|---|---|---|")
    for name, secs, rate in rows:
        print(f"| {name} | {secs:.1f} | {rate} |")
    print()
    print((out / "classical" / "comparison.md").read_text())
    logreg = next((r for r in results if r.name == "logreg"), None)
    if logreg is not None:
        auc = logreg.metrics["val"]["roc_auc"]
        print(f"logreg patient-grouped val AUC {auc:.4f} ({'ok' if auc >= 0.95 else 'BELOW'} 0.95)")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
