"""Grad-CAM: formula, normalisation, and a known answer (a bright square in one corner)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medxfer.evaluate.explain import cam_from_maps, grad_cam, normalize_cam, overlay


def test_cam_formula_hand_computed() -> None:
    a = np.zeros((2, 2, 2))
    a[0] = [[1, 0], [0, 0]]
    a[1] = [[0, 0], [0, 3]]
    g = np.zeros((2, 2, 2))
    g[0] = 2.0  # weight 2
    g[1] = -1.0  # weight -1
    cam = cam_from_maps(a, g)
    np.testing.assert_allclose(cam, [[2, 0], [0, 0]])  # 2*A0 - A1, ReLU removes the -3
    with pytest.raises(ValueError, match=r"\(K, h, w\)"):
        cam_from_maps(a, g[:1])


def test_normalize_cam_range_and_size() -> None:
    cam = normalize_cam(np.array([[0.0, 2.0], [1.0, 4.0]]), (8, 8))
    assert cam.shape == (8, 8) and cam.min() == 0.0 and cam.max() == pytest.approx(1.0)
    assert cam[7, 7] == pytest.approx(1.0) and cam[0, 0] == 0.0
    assert normalize_cam(np.zeros((3, 3))).max() == 0.0


def test_overlay_is_rgb_uint8_on_image_size() -> None:
    img = np.full((20, 30), 100, dtype=np.uint8)
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    rgb = overlay(img, cam)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] > rgb[0, 0, 2]  # hot corner: jet is red
    assert rgb[19, 29, 2] > rgb[19, 29, 0]  # cold corner is blue


class TinyCNN(nn.Module):
    def __init__(self, output: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(16, output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def cam_layer(self) -> nn.Module:
        return self.features[3]


def _square_data(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = rng.uniform(0.0, 0.3, size=(n, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in np.where(y == 1)[0]:
        r, c = rng.integers(1, 7, 2)  # bright square somewhere inside the top-left quadrant
        x[i, 0, r : r + 8, c : c + 8] = 1.0
    return torch.from_numpy(np.repeat(x, 3, axis=1)), torch.from_numpy(y)


@pytest.mark.parametrize("output", [2, 1])
def test_cam_peak_in_the_square_corner(output: int) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x, y = _square_data(256, rng)
    model = TinyCNN(output)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(4):
        for i in range(0, 256, 32):
            logits = model(x[i : i + 32])
            if output == 1:
                loss = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y[i : i + 32].float())
            else:
                loss = nn.functional.cross_entropy(logits, y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt, yt = _square_data(40, np.random.default_rng(1))
    with torch.no_grad():
        lt = model(xt)
    pred = (lt[:, 0] > 0).long() if output == 1 else lt.argmax(1)
    assert (pred == yt).float().mean() > 0.9
    pos = xt[yt == 1][:10]
    cams = grad_cam(model, pos, target=1)
    assert cams.shape == (10, 32, 32) and cams.min() >= 0.0 and cams.max() <= 1.0
    for cam in cams:
        r, c = np.unravel_index(cam.argmax(), cam.shape)
        assert r < 16 and c < 16, (r, c)
    # a class other than the predicted one also works and differs
    other = grad_cam(model, pos[:2], target=0)
    assert other.shape == (2, 32, 32) and not np.allclose(other, cams[:2])
    assert model.training  # training mode restored
