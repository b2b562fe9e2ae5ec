"""Backbone registry: each backbone builds, trains a step, swaps heads, has ordered blocks and a CAM layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medxfer.models.backbones import (
    Classifier,
    build_model,
    count_parameters,
    get_spec,
    list_backbones,
    make_head,
)

EXPECTED = {
    "resnet18",
    "resnet50",
    "vgg16",
    "alexnet",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "custom_cnn",
}
SIZE = 64  # every registered net accepts 64 px; keeps VGG16/DenseNet cheap on a 2-core CPU


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _batch(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_registry_holds_every_backbone_and_names_choices_on_error():
    assert set(list_backbones()) == EXPECTED
    with pytest.raises(
        ValueError, match="unknown backbone 'resnet19'; choose one of: alexnet, custom_cnn, .*resnet18"
    ):
        get_spec("resnet19")


def test_families_answer_for_their_backbones():
    assert {get_spec(n).family.name for n in ("resnet18", "efficientnet_lite0", "custom_cnn")} == {
        "torchvision",
        "timm",
        "custom",
    }
    assert get_spec("efficientnet_lite0").family.preprocess("tf_efficientnet_lite0") == (
        224,
        (0.5,) * 3,
        (0.5,) * 3,
    )
    custom = get_spec("custom_cnn").family
    assert not custom.has_imagenet and custom.imagenet_cache("custom_cnn") == []
    with pytest.raises(ValueError, match="no preprocessing for 'x'; register the backbone with preprocess="):
        custom.preprocess("x")


@pytest.mark.parametrize("name", list_backbones())
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, weights="none").train()
    x = _batch()
    logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    emb = model.embed(x)
    assert emb.shape == (2, model.num_features)
    nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.head[-1].weight.grad.abs().sum() > 0
    assert any(g.abs().sum() > 0 for g in (p.grad for p in model.backbone.parameters()))


@pytest.mark.parametrize("name", list_backbones())
def test_head_swap_keeps_num_features(name):
    two = build_model(name, num_classes=2)
    five = build_model(name, num_classes=5, head={"kind": "mlp", "hidden": 32, "dropout": 0.5})
    assert two.num_features == five.num_features > 0
    timm_width = getattr(two.backbone, "num_features", None)  # timm's own attribute, where it exists
    if timm_width is not None:
        assert two.num_features == timm_width
    assert isinstance(two.head[-1], nn.Linear) and two.head[-1].in_features == two.num_features
    assert two.head[-1].out_features == 2
    hidden, out = five.head[0], five.head[-1]
    assert (hidden.in_features, hidden.out_features, out.in_features, out.out_features) == (
        five.num_features,
        32,
        32,
        5,
    )
    assert isinstance(five.head[1], nn.ReLU) and five.head[2].p == 0.5
    five.eval()
    with torch.no_grad():
        probs = five.predict_proba(_batch())
    assert probs.shape == (2, 5)
    assert torch.allclose(probs.sum(1), torch.ones(2), atol=1e-6)


def _first_calls(model: Classifier, blocks: list[nn.Module]) -> list[int]:
    """For each block, the call counter at which any of its modules first ran in one forward pass."""
    counter, first, handles = [0], {}, []
    for i, block in enumerate(blocks):
        for mod in block.modules():

            def hook(_m, _i, _o, i=i):
                counter[0] += 1
                first.setdefault(i, counter[0])

            handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()(_batch(1))
    for h in handles:
        h.remove()
    return [first[i] for i in range(len(blocks))]


@pytest.mark.parametrize("name", list_backbones())
def test_blocks_cover_backbone_in_order(name):
    model = build_model(name, num_classes=2)
    blocks = model.blocks()
    assert len(blocks) >= 3
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    assert in_blocks == {id(p) for p in model.backbone.parameters()}
    order = _first_calls(model, blocks)
    assert order == sorted(order) and len(set(order)) == len(order)


@pytest.mark.parametrize("name", list_backbones())
def test_cam_layer_is_a_feature_map_with_gradients(name):
    model = build_model(name, num_classes=2).eval()
    layer = model.cam_layer()
    assert any(layer is m for m in model.backbone.modules())
    store = {}

    def hook(_m, _i, out):
        store["act"] = out
        out.register_hook(lambda g: store.setdefault("grad", g))

    handle = layer.register_forward_hook(hook)
    model(_batch(1).requires_grad_(True))[0, 1].backward()
    handle.remove()
    assert store["act"].ndim == 4 and store["act"].shape[1] > 1
    assert store["grad"].shape == store["act"].shape


def test_sigmoid_output_gives_one_logit_and_two_probabilities():
    model = build_model("custom_cnn", num_classes=2, output="sigmoid").eval()
    x = _batch(3)
    with torch.no_grad():
        logits = model(x)
        probs = model.predict_proba(x)
    assert logits.shape == (3, 1)
    p = torch.sigmoid(logits[:, 0])
    assert torch.allclose(probs, torch.stack([1 - p, p], dim=1))
    with pytest.raises(ValueError, match="binary"):
        build_model("custom_cnn", num_classes=3, output="sigmoid")
    with pytest.raises(ValueError, match="softmax, sigmoid"):
        build_model("custom_cnn", num_classes=2, output="tanh")


def test_head_options_are_validated():
    with pytest.raises(ValueError, match="linear, mlp"):
        make_head(16, 2, {"kind": "attention"})
    with pytest.raises(ValueError, match="dropout"):
        make_head(16, 2, {"kind": "linear", "dropout": 1.5})
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_model("custom_cnn", num_classes=1)
    mlp = make_head(16, 3, {"kind": "mlp", "hidden": 0, "dropout": 0.2})
    assert mlp[0].out_features == 256  # the VGG16 + FC256 recipe's default


def test_preprocessing_is_read_from_the_libraries():
    import timm
    from torchvision.models import ResNet18_Weights

    cfg = timm.get_pretrained_cfg("tf_efficientnet_lite1")
    size, mean, std = get_spec("efficientnet_lite1").preprocess("packaged")
    assert (
        (size, mean, std)
        == (cfg.input_size[-1], tuple(cfg.mean), tuple(cfg.std))
        == (240, (0.5,) * 3, (0.5,) * 3)
    )
    tf = ResNet18_Weights.DEFAULT.transforms()
    assert get_spec("resnet18").preprocess("imagenet") == (224, tuple(tf.mean), tuple(tf.std))
    assert get_spec("resnet18").preprocess("none") == get_spec("resnet18").preprocess("imagenet")
    assert get_spec("custom_cnn").preprocess("none") == (224, (0.5,) * 3, (0.5,) * 3)
    assert get_spec("efficientnet_lite0").input_size == 224
    assert get_spec("efficientnet_lite0").default_weights == "packaged"


def test_run_folder_round_trip_uses_this_registry(tmp_path):
    from medxfer.runs import ModelInfo, NetworkSpec, load_model, save_model

    head = {"kind": "mlp", "hidden": 8, "dropout": 0.1}
    model = build_model("custom_cnn", num_classes=2, head=head, output="sigmoid").eval()
    net = NetworkSpec(backbone="custom_cnn", weights="none", head=head)
    info = ModelInfo(
        class_names=["normal", "pneumonia"], network=net, input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3
    )
    info.output = "sigmoid"
    save_model(tmp_path, model, info)
    loaded, _ = load_model(tmp_path)
    x = _batch(2)
    with torch.no_grad():
        assert torch.equal(loaded.predict_proba(x), model.predict_proba(x))


def test_models_command_lists_backbones_and_sources():
    from typer.testing import CliRunner

    from medxfer.cli import app

    result = CliRunner().invoke(app, ["models", "efficientnet_lite0", "custom_cnn"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[1]: line for line in result.output.splitlines() if "│" in line and line.split()[1:2]
    }
    lite, custom = lines["efficientnet_lite0"], lines["custom_cnn"]
    lite_params = count_parameters(build_model("efficientnet_lite0", 2).backbone) / 1e6
    assert f"{lite_params:.2f}" in lite and "224" in lite and "packaged file none" in lite
    assert "packaged" not in custom and "file none" in custom
    bad = CliRunner().invoke(app, ["models", "resnet19"])
    assert bad.exit_code == 2 and "resnet18" in bad.output
