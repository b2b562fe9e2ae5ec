"""Prediction throughput on the CPU: torch vs onnxruntime, on real Kermany X-rays.

    python bench/bench_predict.py [--run RUN | --backbone efficientnet_lite0] [--images 64]
        [--batch-size 16] [--threads N] [--repeats 3]

Without ``--run`` an untrained run of ``--backbone`` (random weights, nothing downloaded) is made in a
temporary folder. Images are decoded once up front; the table reports model time including
preprocessing (resize + normalise), i.e. what ``Predictor.predict_arrays`` costs. Prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _runs import kermany_paths, make_bench_run


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="existing run folder (copied; never written to)")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch/onnx intra-op threads (0 = library default)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch

    from medxfer.data.images import read_image
    from medxfer.inference.export import export_run
    from medxfer.inference.predictor import Predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="medxfer-bench-"))
    try:
        run = work / "run"
        if args.run:
            shutil.copytree(args.run, run)
        else:
            make_bench_run(run, args.backbone)
        images = [read_image(p) for p in kermany_paths(args.images)]
        t0 = time.perf_counter()
        res = export_run(run, "onnx", check_images=images[:8], force=True)
        export_s = time.perf_counter() - t0
        rows = []
        probs = {}
        for engine in ("torch", "onnx"):
            pred = Predictor(run, engine=engine)
            pred.predict_arrays(images[: args.batch_size], batch_size=args.batch_size)  # warm-up
            probs[engine] = pred.predict_arrays(images, batch_size=args.batch_size)
            secs = _time(lambda p=pred: p.predict_arrays(images, batch_size=args.batch_size), args.repeats)
            one = _time(lambda p=pred: p.predict_arrays(images[:1]), max(3, args.repeats))
            rows.append((engine, len(images) / secs, 1000 * one))
        diff = float(np.abs(probs["torch"] - probs["onnx"]).max())
        info = Predictor(run, engine="onnx").info
        print(
            f"\nbackbone {info.label} ({info.input_size}px), {len(images)} real Kermany images, "
            f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, best of {args.repeats}"
        )
        print(
            f"ONNX export + self-check: {export_s:.1f} s, max |diff| {res.max_abs_diff:.1e}; "
            f"torch vs onnx on the bench images: {diff:.1e}"
        )
        print(f"\n| engine | images/s (batch {args.batch_size}) | latency 1 image (ms) |")
        print("|---|---:|---:|")
        for engine, ips, ms in rows:
            print(f"| {engine} | {ips:.1f} | {ms:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
