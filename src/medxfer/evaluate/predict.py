"""Batch inference over an image table (under ``torch.no_grad``), with optional test-time augmentation.

TTA averages the class probabilities of six views of each preprocessed image: the image itself, shifts by
4% of the side left/right/up/down, and a 5% zoom-in (edges filled by repeating the border). There is
**no horizontal flip**: a chest X-ray has a side (heart on the patient's left, side markers, text), so a
mirrored film is not a plausible input and flipping would teach/test the wrong invariance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medxfer.runs import ModelInfo

TTA_SHIFT = 0.04
TTA_ZOOM = 1.05


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The TTA views of a batch ``(B, 3, S, S)``: identity, 4 shifts, 1 zoom (same shape each)."""
    import torch
    import torch.nn.functional as F

    views = [x]
    d = 2 * TTA_SHIFT  # affine_grid coordinates span [-1, 1]
    params = [(1.0, d, 0.0), (1.0, -d, 0.0), (1.0, 0.0, d), (1.0, 0.0, -d), (1.0 / TTA_ZOOM, 0.0, 0.0)]
    for scale, tx, ty in params:
        theta = torch.tensor([[scale, 0.0, tx], [0.0, scale, ty]], dtype=x.dtype).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        views.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))
    return views


def predict_batch(model: nn.Module, x: torch.Tensor, tta: bool = False) -> np.ndarray:
    """Probabilities ``(B, C)`` of one preprocessed batch (mean over TTA views when ``tta``)."""
    import torch

    with torch.no_grad():
        views = tta_views(x) if tta else [x]
        probs = torch.stack([model.predict_proba(v) for v in views]).mean(dim=0)
    return probs.float().cpu().numpy()


def read_images(paths: Sequence[str]) -> list[np.ndarray]:
    """Decode image files with :func:`medxfer.data.images.read_image` (errors name the file)."""
    from medxfer.data.images import read_image

    return [read_image(p) for p in paths]


def predict_paths(
    model: nn.Module, info: ModelInfo, paths: Sequence[str], batch_size: int = 32, tta: bool = False
) -> np.ndarray:
    """Class probabilities ``(N, C)`` for image files, in batches of ``batch_size``; a local calibration
    in ``info.temperature`` (``medxfer evaluate --calibrate-on``) is applied.

    Example::

        model, info = load_model("runs/demo"); proba = predict_paths(model, info, ["a.png"])
    """
    from medxfer.data.transforms import batch_input
    from medxfer.evaluate.calibration import apply_temperature

    model.eval()
    out = [np.zeros((0, info.num_classes), dtype=np.float32)]
    for start in range(0, len(paths), batch_size):
        images = read_images(paths[start : start + batch_size])
        out.append(predict_batch(model, batch_input(images, info), tta=tta))
    return apply_temperature(np.concatenate(out), float(info.temperature))
