"""Contrast preprocessing of a prepared uint8 image: histogram equalisation or CLAHE (numpy only).

A run records its choice as ``model.preprocess`` in ``model.json`` (config key ``model.preprocess``);
:func:`medxfer.data.transforms.prepare_pixels` applies it to the resized image, so training,
evaluation, prediction, serving and the image cache see the same pixels. An exported ONNX/TorchScript
graph takes already-prepared pixels (as for resizing): a consumer outside medxfer applies it first.

- ``equalize``: global histogram equalisation, ``v -> round(255 * (cdf(v) - cdf_min) / (N - cdf_min))``
  (``cdf_min`` the count of the darkest value present; a flat image is left as it is).
- ``clahe``: contrast-limited adaptive equalisation (Zuiderveld 1994, as OpenCV's ``createCLAHE``):
  an 8 x 8 grid of tiles, each tile's histogram clipped at ``clip_limit`` times the mean bin count with
  the excess spread evenly over all bins, ``lut = 255 * cdf / tile_pixels``; every pixel blends the
  look-up tables of its four nearest tile centres bilinearly.

Colour images (``channels: rgb``) are processed channel by channel.
"""

from __future__ import annotations

import numpy as np

PREPROCESS = ("none", "equalize", "clahe")
CLAHE_CLIP = 2.0  # OpenCV's usual clipLimit for X-rays
CLAHE_GRID = 8


def contrast(img: np.ndarray, preprocess: str) -> np.ndarray:
    """``img`` (uint8, (H, W) or (H, W, 3)) after ``preprocess`` (one of :data:`PREPROCESS`).

    >>> contrast(np.array([[0, 0], [100, 200]], np.uint8), "equalize").tolist()
    [[0, 0], [128, 255]]
    """
    if preprocess == "none":
        return img
    if preprocess not in PREPROCESS:
        raise ValueError(f"preprocess={preprocess!r}; valid: {', '.join(PREPROCESS)}")
    one = equalize if preprocess == "equalize" else clahe
    if img.ndim == 3:
        return np.stack([one(img[:, :, c]) for c in range(img.shape[2])], axis=2)
    return one(img)


def equalize(img: np.ndarray) -> np.ndarray:
    """Global histogram equalisation of a 2-D uint8 image (the exact CDF mapping, see the module)."""
    cdf = np.cumsum(np.bincount(img.ravel(), minlength=256))
    low = int(cdf[img.min()])
    if cdf[-1] == low:  # one grey level: nothing to spread
        return img
    lut = np.round((cdf - low) * 255.0 / (cdf[-1] - low)).clip(0, 255).astype(np.uint8)
    return lut[img]


def clahe(img: np.ndarray, clip_limit: float = CLAHE_CLIP, grid: int = CLAHE_GRID) -> np.ndarray:
    """CLAHE of a 2-D uint8 image: ``grid`` x ``grid`` tiles (fewer for tiny images), see the module."""
    h, w = img.shape
    gy, gx = max(1, min(grid, h)), max(1, min(grid, w))
    th, tw = -(-h // gy), -(-w // gx)  # tile size: ceil; the image is padded by reflection to fit
    padded = np.pad(img, ((0, gy * th - h), (0, gx * tw - w)), mode="reflect" if min(h, w) > 1 else "edge")
    tiles = padded.reshape(gy, th, gx, tw).transpose(0, 2, 1, 3).reshape(gy * gx, th * tw)
    offsets = np.arange(gy * gx)[:, None] * 256
    hist = np.bincount((tiles.astype(np.int64) + offsets).ravel(), minlength=gy * gx * 256)
    lut = _tile_luts(hist.reshape(gy, gx, 256).astype(np.float64), clip_limit, th * tw)
    y0, y1, wy = _neighbours(h, th, gy)
    x0, x1, wx = _neighbours(w, tw, gx)
    v = img.astype(np.int64)
    top = lut[y0[:, None], x0[None, :], v] * (1 - wx) + lut[y0[:, None], x1[None, :], v] * wx
    bottom = lut[y1[:, None], x0[None, :], v] * (1 - wx) + lut[y1[:, None], x1[None, :], v] * wx
    out = top * (1 - wy[:, None]) + bottom * wy[:, None]
    return np.round(out).clip(0, 255).astype(np.uint8)


def _tile_luts(hist: np.ndarray, clip_limit: float, area: int) -> np.ndarray:
    """Clip each tile's histogram at ``max(1, clip_limit * area / 256)``, spread the excess evenly,
    and map ``v -> 255 * cdf(v) / area``."""
    if clip_limit > 0:
        limit = max(1.0, clip_limit * area / 256.0)
        excess = np.clip(hist - limit, 0, None).sum(axis=-1, keepdims=True)
        hist = np.minimum(hist, limit) + excess / 256.0
    return np.cumsum(hist, axis=-1) * (255.0 / area)


def _neighbours(n: int, tile: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pixel row (column): the tiles whose centres bracket it and the weight of the second."""
    pos = (np.arange(n) + 0.5) / tile - 0.5  # in tile units, 0 = the first tile's centre
    first = np.clip(np.floor(pos), 0, count - 1).astype(np.int64)
    second = np.minimum(first + 1, count - 1)
    weight = np.clip(pos - first, 0.0, 1.0)
    weight[second == first] = 0.0
    return first, second, weight
