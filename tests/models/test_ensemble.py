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
