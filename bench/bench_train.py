"""Train recipes and print a table: wall time, images/s, validation metrics.

    python bench/bench_train.py kermany-binary [colon ...] [--out runs/bench]

Each recipe trains into a fresh folder under --out (default runs/bench-<time>); the table is printed and
written to <out>/bench_train.md. On this project's reference machine (2 CPU cores) see the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs") / time.strftime("bench-%Y%m%d-%H%M%S"))
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("MEDXFER_SHARED_DATA", str(Path("../shared/data").resolve()))

    from medxfer.config import load_config
    from medxfer.training.runner import train_run

    rows = []
    for cfg_path in args.configs:
        cfg = load_config(cfg_path, args.sets)
        run = args.out / cfg_path.stem
        start = time.perf_counter()
        result = train_run(cfg, run, progress=False)
        wall = time.perf_counter() - start
        summary = json.loads((run / "train_summary.json").read_text())
        m = summary["val_metrics"]
        rows.append(
            f"| {cfg_path.name} | {summary['backbone']} | {summary['input_size']} | {wall / 60:.1f} | "
            f"{summary['images_per_second']:.1f} | {m.get('val_auc', float('nan')):.4f} | "
            f"{m.get('val_acc', float('nan')):.4f} | {m.get('val_f1', float('nan')):.4f} | {result.run_dir} |"
        )
    table = "\n".join(
        [
            "| recipe | backbone | px | minutes (wall, incl. decoding) | train img/s | val AUC | val acc | "
            "val macro F1 | run |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    (args.out / "bench_train.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
