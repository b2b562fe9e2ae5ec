"""Training speed of EfficientNet-Lite0 fine-tuning (all layers) under each precision/memory format.

    python bench/bench_precision.py [--size 160] [--batch 32] [--batches 4] [--threads 2]

A few optimizer steps on random inputs per variant (the first one is warm-up, not timed); prints a
markdown table of images/s. Kept under ~2 minutes on the 2-core CPU: the decision it informs is
``train.precision: auto`` and ``train.channels_last`` (bench/RESULTS.md, "Precision and memory format").
Images per CPU second (one thread) stay comparable when other jobs share the cores; wall speed does not.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from medxfer.models.backbones import build_model


def _speed(
    size: int, batch: int, batches: int, bf16: bool, model_cl: bool, input_cl: bool
) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) of ``batches`` training steps."""
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 2, weights="packaged").train()
    model = model.to(memory_format=torch.channels_last if model_cl else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size)
    x = x.contiguous(memory_format=torch.channels_last) if input_cl else x
    y = torch.randint(0, 2, (batch,))
    seconds = cpu = 0.0
    for step in range(batches + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        cast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with cast:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:  # the first step pays one-off allocation and kernel selection
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
    return batch * batches / seconds, batch * batches / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [
        ("fp32, NCHW model + input", False, False, False),
        ("fp32, channels_last model, NCHW input", False, True, False),
        ("fp32, channels_last model + input", False, True, True),
        ("bf16 autocast, NCHW", True, False, False),
        ("bf16 autocast, channels_last model + input", True, True, True),
    ]
    print(f"| variant ({args.size} px, batch {args.batch}, {args.threads} thr) | img/s (wall) | img/CPU-s |")
    print("|---|---|---|")
    for name, bf16, model_cl, input_cl in variants:
        wall, cpu = _speed(args.size, args.batch, args.batches, bf16, model_cl, input_cl)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
