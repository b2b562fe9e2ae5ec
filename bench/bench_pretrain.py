"""Pretraining throughput of a backbone per method and input size: images/s of whole training steps
(two X-ray-safe views drawn from real decoded images, forward, backward, AdamW step).

Wall-clock images/s depend on what else runs on the machine; ``cpu img/s`` divides by the process's CPU
time per thread instead, the speed the same cores would give unshared.

Usage: ``python bench/bench_pretrain.py [--backbone efficientnet_lite0] [--sizes 128 160 224]
[--methods byol simclr dino] [--precisions 32-true bf16-mixed] [--batch 16] [--steps 2]``

``bf16-mixed`` wraps the forward pass and loss in CPU autocast, as Lightning's ``precision: bf16-mixed`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch


def measure(
    backbone: str, method: str, size: int, batch: int, steps: int, paths: list[str], precision: str
) -> tuple[float, float]:
    """(wall img/s, cpu img/s) of ``steps`` timed training steps after one warm-up step."""
    from medxfer.data.cache import load_prepared
    from medxfer.models.backbones import build_model
    from medxfer.models.weights import load_weights
    from medxfer.pretraining.methods import build_method
    from medxfer.pretraining.views import VIEWS, TwoViews

    model = build_model(backbone, 2)
    load_weights(model, backbone, "packaged")
    ssl = build_method(method, model.backbone, model.num_features, 1).train()
    opt = torch.optim.AdamW([p for p in ssl.parameters() if p.requires_grad], lr=1e-4)
    ds = TwoViews(load_prepared(paths, size, "gray", progress=False), (0.5,) * 3, (0.5,) * 3, 0, VIEWS)
    wall = cpu = 0.0
    for step in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        views = [ds[step * batch + i] for i in range(batch)]
        x1, x2 = (
            torch.stack(v).contiguous(memory_format=torch.channels_last) for v in zip(*views, strict=True)
        )
        cast = (
            torch.autocast("cpu", torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()
        )
        with cast:
            loss = ssl.loss(x1, x2, 0.5, 0)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step:  # the first step warms oneDNN up
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
    n = steps * batch
    return n / wall, n / (cpu / torch.get_num_threads())


def main() -> None:
    from medxfer.io import shared_data_dir
    from medxfer.pretraining.images import gather_images

    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 224])
    ap.add_argument("--methods", nargs="+", default=["byol", "simclr", "dino"])
    ap.add_argument("--precisions", nargs="+", default=["32-true"], choices=["32-true", "bf16-mixed"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    paths = gather_images([f"folder:{shared_data_dir() / 'kermany' / 'train'}"])[
        : args.batch * (args.steps + 1)
    ]
    print(
        f"| method | input | precision | wall img/s | cpu img/s ({torch.get_num_threads()} threads) |\n"
        "|---|---|---|---|---|"
    )
    for method in args.methods:
        for size in args.sizes:
            for precision in args.precisions:
                wall, cpu = measure(args.backbone, method, size, args.batch, args.steps, paths, precision)
                print(f"| {method} | {size} | {precision} | {wall:.2f} | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
