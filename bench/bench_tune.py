"""Fast-mode tuning speed: N Optuna trials of a head on cached features, timed.

    python bench/bench_tune.py [--features FILE] [--trials 100] [--pruner median] [--threads 1]

``--features``: a ``medxfer features`` file (e.g. Kermany + efficientnet_lite0, see
bench_classical.py --out). Without it, synthetic features of the same shape (5,216 x 1,280, two
classes) are used. A fresh SQLite study in a temporary folder each time. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def synthetic(path: Path, n: int = 5216, d: int = 1280) -> None:
    import numpy as np

    from medxfer.features.extract import FeatureSet, save_features

    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.74).astype(np.int64)
    x = np.abs(rng.normal(size=(n, d))).astype(np.float32)
    x[:, :32] += 0.6 * y[:, None]
    cols = {
        "path": np.array([f"/synthetic/{i}.png" for i in range(n)]),
        "label_name": np.array(["normal", "pneumonia"])[y],
        "patient_id": np.array([f"p{i // 2}" for i in range(n)]),
        "split": np.full(n, ""),
        "source": np.full(n, "synthetic"),
    }
    save_features(FeatureSet(x, y, ["normal", "pneumonia"], cols, {"backbone": "synthetic"}), path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default=None)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--pruner", default="median")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import optuna

    from medxfer.tuning.search import TuneOptions, run_tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="medxfer-bench-tune-"))
    feats = Path(args.features) if args.features else tmp / "synthetic.npz"
    if not args.features:
        synthetic(feats)
    opts = TuneOptions(
        trials=args.trials,
        storage=f"sqlite:///{tmp / 'tune.db'}",
        study="bench",
        fast=True,
        features=feats,
        out=tmp / "out",
        pruner=args.pruner,
        threads=args.threads,
    )
    start = time.perf_counter()
    s = run_tune(opts, log=lambda m: None)
    secs = time.perf_counter() - start
    print(f"\nfeatures: {feats.name}, cpus={os.cpu_count()}, threads={args.threads}, pruner={args.pruner}")
    print("| trials | complete | pruned | failed | seconds (incl. plots) | s/trial | best val AUC |")
    print("|---|---|---|---|---|---|---|")
    done = s["complete"] + s["pruned"]
    print(
        f"| {args.trials} | {s['complete']} | {s['pruned']} | {s['failed']} | {secs:.1f} | "
        f"{secs / max(done, 1):.2f} | {s.get('best_value', float('nan')):.4f} |"
    )
    print(f"best params: {s.get('best_params')}")
    print(f"outputs in {tmp / 'out'} ({'under' if secs < 300 else 'OVER'} the 5 minute target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
