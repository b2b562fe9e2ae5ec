"""Grad-CAM works for every registry backbone (random weights, 64 px): shape, range, any class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medxfer.evaluate.explain import grad_cam
from medxfer.models.backbones import build_model, list_backbones


@pytest.mark.parametrize("name", list_backbones())
def test_grad_cam_every_backbone(name: str) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model(name, num_classes=3)
    x = torch.randn(1, 3, 64, 64)
    cams = [grad_cam(model, x, target=k)[0] for k in range(3)]
    for cam in cams:
        assert cam.shape == (64, 64) and np.isfinite(cam).all()
        assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert any(cam.max() == pytest.approx(1.0) for cam in cams)  # at least one class has evidence
