"""The unlabelled images of a pretraining: every dataset spec of the one data path, labels ignored.

Datasets are listed with :func:`medxfer.data.datasets.load_dataset` (any registered layout: its raw
labels are dropped); a ``folder:`` spec that holds images without class sub-folders is read as a plain
folder of images. The list is sorted, capped (``max_images``, a seeded sample), and identified by the
sha256 of its sorted paths (in the card).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class PretrainError(ValueError):
    """A pretraining that cannot start; the message names the value and the valid choices."""


def _spec_paths(spec: str) -> list[str]:
    """Image paths of one ``LAYOUT:PATH`` spec (a plain ``folder:`` of images too)."""
    from medxfer.data.datasets import load_dataset, parse_spec
    from medxfer.data.layouts import DatasetError, list_images, require_dir

    try:
        return list(load_dataset(spec)["path"])
    except DatasetError as exc:
        layout, root, _ = parse_spec(spec)
        if layout != "folder" or "no class sub-folders" not in str(exc):
            raise
        require_dir(root, "folder")
        paths = list_images(root)
        if not paths:
            raise DatasetError(f"{root}: no images found (layout folder)") from None
        return paths


def gather_images(specs: Sequence[str]) -> list[str]:
    """Sorted, unique image paths of ``specs`` (``LAYOUT:PATH``; ``${VAR}`` expanded), labels ignored.

    Example::

        paths = gather_images(["kermany:${MEDXFER_SHARED_DATA}/kermany", "folder:scans/"])
    """
    from medxfer.io import expand_vars

    if not specs:
        raise PretrainError("pretrain: no data given; pass at least one --data LAYOUT:PATH")
    paths: set[str] = set()
    for spec in specs:
        paths.update(_spec_paths(expand_vars(spec)))
    return sorted(paths)


def cap_images(paths: list[str], max_images: int | None, seed: int) -> list[str]:
    """At most ``max_images`` of ``paths`` (a sample drawn with ``seed``), kept sorted."""
    if max_images is None or max_images >= len(paths):
        return paths
    if max_images < 1:
        raise PretrainError(f"--max-images {max_images}: give at least 1")
    keep = np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False)
    return [paths[i] for i in sorted(keep)]


def list_sha256(paths: Sequence[str]) -> str:
    """sha256 of the sorted paths, one per line (what the card calls ``images_sha256``)."""
    text = "\n".join(sorted(str(Path(p)) for p in paths))
    return hashlib.sha256(text.encode()).hexdigest()
