"""One model.json schema (``runs.ModelInfo``): one network or an ensemble, not both; old files migrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medxfer.runs import ModelInfo, NetworkSpec, read_model_info, validate_model_json

NET = {"backbone": "custom_cnn", "weights": "none", "head": {"kind": "linear", "hidden": 0, "dropout": 0.0}}
MEMBER = {
    **NET,
    "run": "/runs/a",
    "metrics": {"val_auc": 0.9},
    "input_size": 32,
    "mean": [0.5] * 3,
    "std": [0.25] * 3,
}
BASE = {"class_names": ["normal", "pneumonia"], "input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}


def test_a_written_record_validates_and_reads_back_equal(tmp_path: Path) -> None:
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=32,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        threshold=0.3,
    )
    (tmp_path / "model.json").write_text(info.to_json())
    assert read_model_info(tmp_path) == info
    assert not info.is_ensemble and info.label == "custom_cnn" and info.networks == [info.network]


@pytest.mark.parametrize(
    ("shape", "given"),
    [({}, "neither"), ({"network": NET, "members": [MEMBER, MEMBER]}, "both")],
)
def test_exactly_one_of_network_and_members(shape: dict, given: str) -> None:
    with pytest.raises(ValueError, match=f"exactly one of 'network' .* and 'members' .*got {given}"):
        validate_model_json(json.dumps({**BASE, **shape}))
    with pytest.raises(ValueError, match=f"got {given}"):
        ModelInfo(**BASE, **shape)


def test_one_member_is_not_an_ensemble() -> None:
    with pytest.raises(ValueError, match=r"field 'members': an ensemble has 2 to \d+ members, got 1"):
        validate_model_json(json.dumps({**BASE, "members": [MEMBER]}))


def test_an_ensemble_written_carries_no_single_network_fields() -> None:
    info = validate_model_json(json.dumps({**BASE, "members": [MEMBER, {**MEMBER, "input_size": 48}]}))
    data = json.loads(info.to_json())
    assert not {"network", "backbone", "weights", "head"} & set(data)
    assert [m["input_size"] for m in data["members"]] == [32, 48] and info.network is None
    assert info.is_ensemble and info.label == "ensemble of custom_cnn + custom_cnn"
    assert validate_model_json(info.to_json()) == info


def test_the_old_flat_format_migrates() -> None:
    single = validate_model_json(json.dumps({**BASE, **NET, "threshold": 0.3}))
    assert single.network == NetworkSpec(**NET) and single.members is None and single.threshold == 0.3
    assert json.loads(single.to_json())["network"] == NET  # written in today's shape
    # an old ensemble: top-level backbone/weights/head were its first member's copy
    old = {**BASE, **NET, "members": [MEMBER, {**MEMBER, "backbone": "efficientnet_lite0"}]}
    ens = validate_model_json(json.dumps(old))
    assert ens.network is None and [m.backbone for m in ens.members or []] == [
        "custom_cnn",
        "efficientnet_lite0",
    ]
    assert validate_model_json(json.dumps({**BASE, **NET, "members": []})).network == NetworkSpec(**NET)


def test_old_and_new_fields_together_are_refused() -> None:
    with pytest.raises(ValueError, match="'network' and the old top-level backbone: keep 'network' only"):
        validate_model_json(json.dumps({**BASE, "network": NET, "backbone": "custom_cnn"}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_size": "32"}, "field 'input_size': Input should be a valid integer (got '32')"),
        ({"threshold": True}, "field 'threshold'"),
        ({"network": {**NET, "head": {"kind": "mlp", "hidden": 1.5}}}, "field 'network.head.hidden'"),
        (
            {"network": {**NET, "backbone": "resnet9000"}},
            "field 'network.backbone': unknown backbone 'resnet9000'",
        ),
        ({"network": {**NET, "extra": 1}}, "field 'network.extra': Extra inputs are not permitted"),
        ({"class_names": []}, "field 'class_names': a classifier needs at least 2 class names, got []"),
        ({"mean": [0.5, 0.5]}, "field 'mean': needs exactly 3 numbers"),
    ],
)
def test_a_wrong_field_is_named_with_its_value(change: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_model_json(json.dumps({**BASE, "network": NET, **change}))
    assert message in str(err.value)


def test_a_preprocessing_record_may_have_no_classes_but_never_one() -> None:
    record = ModelInfo.for_backbone("custom_cnn", "none", [], 32)  # frozen-network features
    assert record.class_names == [] and record.input_size == 32
    with pytest.raises(ValueError, match="at least 2 class names"):
        ModelInfo.for_backbone("custom_cnn", "none", ["normal"], 32)
