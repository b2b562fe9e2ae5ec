"""The Ensemble network: the mean of its members' probabilities, as logits; one-network parts refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medxfer.evaluate.explain import grad_cam, normalize_cam
from medxfer.models.backbones import build_model
from medxfer.models.ensemble import Ensemble, EnsembleError


def _members(output: str = "softmax", n: int = 3, classes: int = 2) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [build_model("custom_cnn", classes, output=output).eval() for _ in range(n)]


@pytest.mark.parametrize(("output", "classes"), [("softmax", 3), ("sigmoid", 2)])
def test_forward_logits_give_back_the_mean_probability(output: str, classes: int) -> None:
    members = _members(output, classes=classes)
    ens = Ensemble(members, output=output).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        mean = torch.stack([m.predict_proba(x) for m in members]).mean(0)
        assert not torch.allclose(members[0].predict_proba(x), members[1].predict_proba(x))
        torch.testing.assert_close(ens.predict_proba(x), mean)
        logits = ens(x)
        assert logits.shape == (4, 1 if output == "sigmoid" else classes)
        back = torch.sigmoid(logits[:, 0]) if output == "sigmoid" else torch.softmax(logits, 1)[:, -1]
        torch.testing.assert_close(back, mean[:, -1], atol=1e-6, rtol=0)


def test_members_must_agree_and_number_two_or_more() -> None:
    with pytest.raises(EnsembleError, match="2 to 16 members"):
        Ensemble(_members(n=1))
    mixed = _members(n=1) + [build_model("custom_cnn", 3)]
    with pytest.raises(EnsembleError, match="share num_classes"):
        Ensemble(mixed)
    with pytest.raises(EnsembleError, match="output='sigmoid'"):
        Ensemble(_members("softmax", n=2), output="sigmoid")


def test_one_network_parts_are_refused_with_a_message() -> None:
    ens = Ensemble(_members(n=2))
    for call in (lambda: ens.blocks(), lambda: ens.cam_layer(), lambda: ens.embed(torch.zeros(1, 3, 32, 32))):
        with pytest.raises(EnsembleError, match="ensemble of 2"):
            call()


def test_grad_cam_is_the_mean_of_the_members_maps_for_the_ensembles_class() -> None:
    members = _members(n=2)
    ens = Ensemble(members).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        predicted = ens.predict_proba(x).argmax(1).tolist()
    parts = [grad_cam(m, x, target=predicted) for m in members]
    expected = np.stack([normalize_cam(c) for c in np.mean(parts, axis=0)])
    np.testing.assert_allclose(grad_cam(ens, x), expected, atol=1e-6)
    assert not np.allclose(parts[0], parts[1])  # the members differ, so the mean is not either one


def test_an_adapter_gives_the_member_its_own_size_and_normalisation() -> None:
    import torch.nn.functional as F

    from medxfer.models.ensemble import InputAdapter, InputSpec

    source = InputSpec(40, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    target = InputSpec(32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = torch.rand(2, 3, 40, 40)  # [0, 1]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (source.mean, source.std))
    tmean, tstd = (torch.tensor(v).view(1, 3, 1, 1) for v in (target.mean, target.std))
    resized = F.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    out = InputAdapter(source, target)((pixels - mean) / std)
    torch.testing.assert_close(out, (resized - tmean) / tstd, atol=1e-5, rtol=0)
    same = torch.randn(1, 3, 40, 40)
    assert InputAdapter(source, source)(same) is same  # the identity costs nothing


def test_members_at_their_own_sizes_keep_their_weights_keys_and_give_one_cam() -> None:
    from medxfer.models.ensemble import InputSpec

    members = _members(n=2)
    source = InputSpec(48, (0.5,) * 3, (0.5,) * 3)
    inputs = [InputSpec(32, (0.5,) * 3, (0.25,) * 3), source]
    ens = Ensemble(members, inputs=inputs, source=source).eval()
    assert set(ens.state_dict()) == set(Ensemble(_members(n=2)).state_dict())  # adapters hold no weights
    x = torch.randn(2, 3, 48, 48)
    views = [xi for _, xi in ens.member_inputs(x)]
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32), (48, 48)] and views[1] is x
    with torch.no_grad():
        mean = torch.stack([m.predict_proba(v) for m, v in zip(members, views, strict=True)]).mean(0)
        torch.testing.assert_close(ens.predict_proba(x), mean)
        predicted = mean.argmax(1).tolist()
    pairs = zip(members, views, strict=True)
    parts = [[normalize_cam(c, (48, 48)) for c in grad_cam(m, v, predicted)] for m, v in pairs]
    cams = grad_cam(ens, x)
    assert cams.shape == (2, 48, 48)
    np.testing.assert_allclose(cams, np.stack([normalize_cam(c) for c in np.mean(parts, 0)]), atol=1e-6)
    with pytest.raises(EnsembleError, match="needs 2 input specs"):
        Ensemble(_members(n=2), inputs=inputs[:1], source=source)
