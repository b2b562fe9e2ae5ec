"""Weight sources are a registry like backbones: listed for the CLI, extended by one decorator."""

from __future__ import annotations

import pytest
import torch

from medxfer.models.backbones import build_model, weight_status
from medxfer.models.weights import (
    WEIGHT_SOURCES,
    WeightsError,
    list_weight_sources,
    parse_source,
    register_weight_source,
)


def test_sources_are_listed_best_first_and_errors_name_them() -> None:
    assert list_weight_sources() == ["imagenet", "packaged", "file:PATH", "pretrained:NAME", "none"]
    with pytest.raises(
        WeightsError, match="choose one of: imagenet, packaged, file:PATH, pretrained:NAME, none"
    ):
        parse_source("hub")
    assert list(weight_status("custom_cnn")) == list_weight_sources()


def test_a_registered_source_is_used_by_build_model() -> None:
    calls = []

    @register_weight_source("zeros", rank=95)
    def _zeros(spec, backbone, path):  # noqa: ANN001, ANN202
        calls.append(spec.name)
        return {k: torch.zeros_like(v) for k, v in backbone.state_dict().items()}, "all zeros"

    try:
        assert list_weight_sources()[-1] == "zeros" and parse_source("zeros") == ("zeros", None)
        model = build_model("custom_cnn", 2, weights="zeros")
        assert calls == ["custom_cnn"] and model.weights_report.path == "all zeros"
        assert all(
            float(v.abs().sum()) == 0 for v in model.backbone.state_dict().values() if v.is_floating_point()
        )
    finally:
        WEIGHT_SOURCES.remove("zeros")
