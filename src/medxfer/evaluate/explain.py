"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

The math is a pure function (:func:`cam_from_maps`); :func:`grad_cam` is a thin wrapper that hooks the
activations and gradients of ``model.cam_layer()`` (chosen per backbone in the registry), so it works for
any backbone and any target class, not only the predicted one. :func:`overlay` draws a heat-map in the
jet colour map on the gray image.

Mapping back to the picture assumes the ``squash`` resize of ``ModelInfo.resize`` (the whole image
stretched to the input square), so the CAM is simply resized to the image's height and width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn


def cam_from_maps(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM of one sample: ``relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``dS/dA_k``.

    Args:
        activations, gradients: ``(K, h, w)`` feature maps of the target layer and the gradient of the
            class score with respect to them.

    Returns:
        ``(h, w)`` non-negative map, not yet normalised.

    Example: one channel, gradient 1 everywhere -> the CAM is the (ReLU of the) activation itself.
    """
    a = np.asarray(activations, dtype=np.float64)
    g = np.asarray(gradients, dtype=np.float64)
    if a.shape != g.shape or a.ndim != 3:
        raise ValueError(f"activations and gradients must both be (K, h, w); got {a.shape} and {g.shape}")
    weights = g.mean(axis=(1, 2))
    return np.maximum(np.tensordot(weights, a, axes=1), 0.0)


def normalize_cam(cam: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Bilinearly resize ``cam`` to ``size`` ``(H, W)`` and scale to ``[0, 1]`` (all-zero map stays 0)."""
    import torch
    import torch.nn.functional as F

    out = np.asarray(cam, dtype=np.float32)
    if size is not None and tuple(out.shape) != tuple(size):
        t = torch.from_numpy(out)[None, None]
        out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()
    out = out - out.min()
    peak = float(out.max())
    return (out / peak).astype(np.float32) if peak > 0 else np.zeros_like(out, dtype=np.float32)


def _class_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pre-activation score per sample; a one-logit (sigmoid) model scores class 0 with ``-logit``."""
    if logits.shape[1] == 1:
        sign = target.to(logits.dtype) * 2 - 1
        return logits[:, 0] * sign
    return logits.gather(1, target[:, None])[:, 0]


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: int | list[int] | None = None,
    layer: nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM heat-maps ``(B, H, W)`` in ``[0, 1]`` at the input size of ``x`` ``(B, 3, H, W)``.

    Args:
        model: a classifier returning logits; ``layer`` defaults to ``model.cam_layer()``. For an
            ensemble (a model with ``members``): the mean of the members' maps, each made for the
            ensemble's target class, rescaled to ``[0, 1]``.
        x: preprocessed input batch.
        target: class index (or one per sample); ``None`` = the predicted class.

    Example::

        cams = grad_cam(model, batch_input([img], info), target=1)
    """
    import torch

    if layer is None and hasattr(model, "members"):
        return _ensemble_cam(model, x, target)
    layer = layer if layer is not None else model.cam_layer()
    store: dict[str, torch.Tensor] = {}

    def save_grad(grad: torch.Tensor) -> None:
        store["grad"] = grad.detach()

    def forward_hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        out = output[0] if isinstance(output, tuple | list) else output
        store["act"] = out.detach().clone()  # clone: a later in-place op must not change it
        out.register_hook(save_grad)

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(forward_hook)
    try:
        with torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)  # gradients flow even if all weights are frozen
            logits = model(inp)
            if target is None:
                tgt = _predicted(logits)
            else:
                tgt = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(logits.shape[0])
            model.zero_grad(set_to_none=True)
            _class_score(logits, tgt).sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    if "act" not in store or "grad" not in store or store["act"].ndim != 4:
        raise RuntimeError(f"cam_layer {type(layer).__name__} gave no (B, K, h, w) feature map for Grad-CAM")
    acts, grads = store["act"].float().cpu().numpy(), store["grad"].float().cpu().numpy()
    size = tuple(x.shape[-2:])
    return np.stack([normalize_cam(cam_from_maps(a, g), size) for a, g in zip(acts, grads, strict=True)])


def _ensemble_cam(model: nn.Module, x: torch.Tensor, target: int | list[int] | None) -> np.ndarray:
    """Mean of the members' normalised Grad-CAMs for the ensemble's class (its prediction if None), each
    made on the member's own input (size, normalisation) and resized to the input size of ``x``."""
    import torch

    if target is None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                target = _predicted(model(x)).tolist()
        finally:
            model.train(was_training)
    size = tuple(x.shape[-2:])
    maps = [  # each member's maps at its own input size, resized to the ensemble's
        [normalize_cam(cam, size) for cam in grad_cam(member, xi, target)]
        for member, xi in model.member_inputs(x)  # type: ignore[operator]
    ]
    return np.stack([normalize_cam(cam) for cam in np.mean(maps, axis=0)])


def _predicted(logits: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Jet-coloured ``cam`` blended on the gray version of ``image`` -> ``(H, W, 3)`` uint8.

    ``cam`` (any size, values in [0, 1]) is resized to the image (the squash convention).
    """
    from matplotlib import colormaps

    img = np.asarray(image)
    gray = img.astype(np.float32) if img.ndim == 2 else img[..., :3].astype(np.float32).mean(axis=2)
    heat = normalize_cam(cam, gray.shape) if cam.shape != gray.shape else np.clip(cam, 0, 1)
    colour = colormaps["jet"](heat)[..., :3] * 255.0
    base = np.repeat(gray[..., None], 3, axis=2)
    return np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)


def save_png(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG atomically."""
    import io

    from PIL import Image

    from medxfer.io import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
