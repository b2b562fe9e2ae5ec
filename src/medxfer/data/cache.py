"""Decode and resize each image once; reuse it across epochs, runs and commands.

A prepared image (masked, channel-converted, resized uint8) is stored as ``.npy`` under
``$MEDXFER_CACHE/images`` (default ``~/.cache/medxfer/images``), keyed by a hash of the file's
bytes and of the preparation (size, channels, mask, contrast preprocessing). A changed file gets a
new key, so the cache never serves stale pixels; deleting the cache folder is always safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medxfer.data.images import ImageError, read_image
from medxfer.data.transforms import prepare_pixels


def cache_root() -> Path:
    """The cache folder: ``$MEDXFER_CACHE`` or ``~/.cache/medxfer``."""
    return Path(os.environ.get("MEDXFER_CACHE") or Path.home() / ".cache" / "medxfer")


def _key(data: bytes, size: int, channels: str, mask: Sequence[Sequence[float]], preprocess: str) -> str:
    h = hashlib.sha1(data)
    h.update(f"|{size}|{channels}|{[list(map(float, b)) for b in mask]}|v1".encode())
    if preprocess != "none":  # keys of images without contrast preprocessing stay as they were
        h.update(f"|{preprocess}".encode())
    return h.hexdigest()


def prepare_file(
    path: str,
    size: int,
    channels: str,
    mask: Sequence[Sequence[float]] = (),
    use_cache: bool = True,
    preprocess: str = "none",
) -> np.ndarray:
    """Decoded, masked, channel-converted, resized, contrast-preprocessed uint8 image of ``path`` (from
    the cache when possible)."""
    data = Path(path).read_bytes()
    key = _key(data, size, channels, mask, preprocess)
    file = cache_root() / "images" / key[:2] / f"{key}.npy"
    if use_cache and file.is_file():
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError):
            pass  # a half-written cache entry from a killed run: decode again
    img = prepare_pixels(read_image(path), size, channels, mask, preprocess)
    if use_cache:
        file.parent.mkdir(parents=True, exist_ok=True)
        # Unique temp name: identical files (duplicates) may be written by two threads at once.
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, img, allow_pickle=False)
        os.replace(tmp, file)
    return img


def load_prepared(
    paths: Sequence[str],
    size: int,
    channels: str,
    mask: Sequence[Sequence[float]] = (),
    workers: int = 2,
    progress: bool = True,
    desc: str = "images",
    preprocess: str = "none",
) -> np.ndarray:
    """All ``paths`` prepared into one array ``(N, S, S)`` (gray) or ``(N, S, S, 3)`` (rgb), uint8.

    Raises :class:`ImageError` (naming the file) for the first unreadable image: run
    ``medxfer check --quarantine`` to set such files aside.
    """
    shape = (len(paths), size, size) + ((3,) if channels == "rgb" else ())
    out = np.empty(shape, np.uint8)

    def work(i: int) -> int:
        out[i] = prepare_file(paths[i], size, channels, mask, preprocess=preprocess)
        return i

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        it = pool.map(work, range(len(paths)))
        if progress and len(paths) > 50:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(paths), desc=f"decode {desc}", unit="img", leave=False)
        for _ in it:
            pass
    return out


def detect_channels(paths: Sequence[str], sample: int = 24, seed: int = 0) -> str:
    """``"rgb"`` if any of a sample of images is in colour, else ``"gray"`` (X-rays stay grayscale)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(paths), size=min(sample, len(paths)), replace=False)
    for i in idx:
        try:
            if read_image(paths[int(i)]).ndim == 3:
                return "rgb"
        except ImageError:
            continue
    return "gray"
