"""Cost of one augmentation draw per image, for every preset (what a training epoch pays per image).

    python bench/bench_augment.py [--size 224] [--images 200] [--channels gray|rgb] [--repeats 3]

Images are real Kermany X-rays (``$MEDXFER_SHARED_DATA/kermany``, prepared to ``--size`` like training
does) when present, else seeded texture. Each row times :func:`medxfer.data.transforms.augment_uint8`
over ``--images`` images (best of ``--repeats``), one thread, and prints milliseconds per image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _images(n: int, size: int, channels: str) -> tuple[list[np.ndarray], str]:
    from medxfer.data.images import read_image
    from medxfer.data.transforms import prepare_pixels
    from medxfer.io import shared_data_dir

    folder = shared_data_dir() / "kermany" / "train" / "NORMAL"
    files = sorted(folder.glob("*.jpeg"))[:n] if folder.is_dir() else []
    if len(files) == n:
        return [prepare_pixels(read_image(f), size, channels) for f in files], f"{n} Kermany X-rays"
    rng = np.random.default_rng(0)
    shape = (size, size) if channels == "gray" else (size, size, 3)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)], f"{n} random textures"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--channels", choices=["gray", "rgb"], default="gray")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from medxfer.data.transforms import PRESETS, augment_uint8

    torch.set_num_threads(1)
    images, what = _images(args.images, args.size, args.channels)
    print(f"augment_uint8 on {what}, {args.size} px {args.channels}, best of {args.repeats}, 1 thread")
    print("| preset | ms / image |\n|---|---|")
    for name, aug in PRESETS.items():
        best = float("inf")
        for r in range(args.repeats):
            start = time.perf_counter()
            for i, img in enumerate(images):
                augment_uint8(img, aug, np.random.default_rng([r, i]))
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {1000 * best / len(images):.2f} |")


if __name__ == "__main__":
    main()
