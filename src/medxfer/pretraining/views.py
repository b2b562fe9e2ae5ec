"""X-ray-safe views for self-supervised pretraining, drawn with the one augmentation path.

Two views of each prepared (decoded once, cached) image are drawn with
:func:`medxfer.data.transforms.augment_uint8` (pixel math of :mod:`medxfer.data.shifts`): a random
resized crop of 35-100 % of the area, exposure, contrast and gamma, and with probability 0.5 each, blur
and noise. No flips (anatomy is not mirror-symmetric) and no hue (X-rays have none).

Reproducibility across a kill and ``--resume``: the order of an epoch depends only on (seed, epoch) and
each view only on (seed, epoch, index, view), so resumed epochs see the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from medxfer.data.transforms import Augment, augment_uint8, normalise

# Crop scale as in SimCLR/BYOL (0.08 there) raised to 0.35: a chest X-ray crop must still show lung.
VIEWS = Augment(crop_scale=0.35, brightness=0.3, contrast=0.3, gamma=0.4, blur=1.5, noise=10, p_degrade=0.5)


class TwoViews(Dataset):
    """Prepared uint8 images -> ``(view1, view2)`` normalised tensors; keys are ``index + epoch * N``."""

    def __init__(
        self, images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], seed: int, views: Augment
    ):
        self.images, self.seed, self.views = images, seed, views
        self.norm = _Norm(mean, std)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(int(key), len(self.images))
        img = self.images[i]
        out = []
        for view in (0, 1):
            rng = np.random.default_rng([self.seed, epoch, i, view])
            out.append(normalise(augment_uint8(img, self.views, rng), self.norm))  # type: ignore[arg-type]
        return out[0], out[1]


class _Norm:
    """The two fields of a preprocessing record that :func:`normalise` reads."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        self.mean, self.std = tuple(mean), tuple(std)


class EpochOrder(Sampler[int]):
    """A shuffled order fixed by (seed, epoch); yields ``index + epoch * N`` (the view draw's key)."""

    def __init__(self, n: int, seed: int, epoch: int):
        self.n, self.seed, self.epoch = n, seed, epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter((torch.randperm(self.n, generator=g) + self.epoch * self.n).tolist())
