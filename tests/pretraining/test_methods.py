"""Each self-supervised method: one step on two views gives a finite loss and trains the backbone;
the momentum teachers follow the student; the views never flip an image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medxfer.models.backbones import build_model
from medxfer.pretraining.methods import build_method, list_methods


@pytest.mark.parametrize("name", ["byol", "simclr", "dino"])
def test_one_step_trains_the_backbone(name: str) -> None:
    torch.manual_seed(0)
    model = build_model("custom_cnn", 2)
    method = build_method(name, model.backbone, model.num_features, epochs=2).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    x1, x2 = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    loss = method.loss(x1, x2, progress=0.5, epoch=1)
    assert torch.isfinite(loss)
    loss.backward()
    method.after_backward(1)
    opt.step()
    after = model.backbone.state_dict()
    assert not torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])
    teacher = getattr(method, "teacher_backbone", None)
    if teacher is not None:  # a frozen copy that only moves by momentum
        assert not any(p.requires_grad for p in teacher.parameters())


def test_methods_are_listed_and_unknown_names_rejected() -> None:
    from medxfer.pretraining.images import PretrainError

    assert list_methods() == ["byol", "dino", "simclr"]
    model = build_model("custom_cnn", 2)
    with pytest.raises(
        PretrainError, match="unknown pretraining method 'moco'; choose one of: byol, dino, simclr"
    ):
        build_method("moco", model.backbone, model.num_features, 1)


def test_views_differ_are_reproducible_and_never_mirror() -> None:
    from medxfer.pretraining.views import VIEWS, TwoViews

    assert VIEWS.hflip == 0 and VIEWS.crop_scale == 0.35
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))  # brighter to the right
    ds = TwoViews(img[None], (0.5,) * 3, (0.5,) * 3, seed=0, views=VIEWS)
    a1, a2 = ds[0]
    b1, _ = ds[0]
    assert torch.equal(a1, b1) and not torch.equal(a1, a2)
    for view in (a1, a2, *ds[1]):  # left-right order survives every crop, exposure and noise draw
        cols = view[0].mean(0)
        assert cols[-8:].mean() > cols[:8].mean()
