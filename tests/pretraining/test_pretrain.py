"""A small real pretraining on shared X-rays: its files and card, its weights in `medxfer train
--weights file:DIR` (loaded, preprocessing carried), and the clear errors around it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medxfer.io import shared_data_dir
from medxfer.models.precision import cpu_supports_bf16, resolve_precision
from medxfer.runs import ModelInfo

KERMANY = shared_data_dir() / "kermany" / "train"
pytestmark = pytest.mark.skipif(not KERMANY.is_dir(), reason="needs ../shared/data/kermany")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 Kermany X-rays, one BYOL epoch at 64 px from the packaged EfficientNet-Lite0 weights."""
    import medxfer

    out = tmp_path_factory.mktemp("pre") / "xray"
    result = medxfer.pretrain(
        [f"kermany:{KERMANY.parent}"],
        out,
        max_images=48,
        epochs=1,
        input_size=64,
        batch_size=16,
        threads=2,
        progress=False,
    )
    assert result.weights == f"file:{out}"
    return out


def test_pretraining_writes_backbone_weights_and_card(pretrained: Path) -> None:
    from medxfer.models.backbones import build_model, get_spec
    from medxfer.models.weights import load_weights

    card = json.loads((pretrained / "card.json").read_text())
    settings = json.loads((pretrained / "pretrain.json").read_text())
    assert (pretrained / "checkpoints" / "last.ckpt").is_file()
    assert (pretrained / "logs" / "metrics.csv").read_text().startswith("epoch")
    assert any((pretrained / "tb").glob("events.out.tfevents.*"))
    assert (card["backbone"], card["source_weights"], card["method"]) == (
        "efficientnet_lite0",
        "packaged",
        "byol",
    )
    assert (card["epochs"], card["batch_size"], card["input_size"], card["images"]) == (1, 16, 64, 48)
    _, mean, std = get_spec("efficientnet_lite0").preprocess("packaged")
    assert (tuple(card["mean"]), tuple(card["std"]), card["channels"]) == (mean, std, "gray")
    assert card["excluded"] == {} and card["seed"] == 0 and card["bn"] == "train"
    assert card["wall_seconds"] > 0 and card["medxfer_version"] and card["final_loss"] is not None
    assert settings["data"] == [f"kermany:{KERMANY.parent}"]
    # the hash is of the sorted image list: 48 of the 5216 Kermany train images, sampled with the seed
    from medxfer.pretraining.images import cap_images, gather_images

    paths = cap_images(gather_images(settings["data"]), 48, 0)
    assert card["images_sha256"] == hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()
    # backbone keys only, exactly the backbone's; adapted, so not the packaged tensors any more
    state = load_file(str(pretrained / "weights.safetensors"))
    source = build_model("efficientnet_lite0", 2)
    load_weights(source, "efficientnet_lite0", "packaged")
    assert state.keys() == source.backbone.state_dict().keys()
    changed = [k for k, v in source.backbone.state_dict().items() if not torch.equal(v, state[k])]
    assert "conv_stem.weight" in changed and len(changed) > 100


def test_train_from_pretrained_weights_loads_them_and_their_preprocessing(
    pretrained: Path, tmp_path: Path
) -> None:
    import medxfer
    from medxfer.runs import load_model

    data = tmp_path / "data"
    for cls in ("NORMAL", "PNEUMONIA"):
        (data / cls).mkdir(parents=True)
        for i, src in enumerate(sorted((KERMANY / cls).glob("*.jpeg"))[:10]):
            shutil.copy(src, data / cls / f"p{i}_{i}.jpeg")
    run = medxfer.train(
        None,
        tmp_path / "run",
        progress=False,
        overrides={
            "data.specs": [f"folder:{data}"],
            "data.val": 0.3,
            "model.backbone": "efficientnet_lite0",
            "model.weights": f"file:{pretrained}",
            "model.input_size": 64,
            "train.batch_size": 8,
            "train.threads": 2,
            "stages": [{"name": "head", "epochs": 1, "trainable": "head", "lr": 1e-3}],
        },
    )
    model, info = load_model(run.path)
    pre = load_file(str(pretrained / "weights.safetensors"))
    # a head-only stage leaves the backbone as loaded: exactly the pretrained tensors
    for key in ("conv_stem.weight", "bn1.running_mean", "blocks.6.0.conv_pwl.weight"):
        assert torch.equal(model.backbone.state_dict()[key], pre[key]), key
    card = json.loads((pretrained / "card.json").read_text())
    assert info.network is not None and info.network.weights == f"file:{pretrained}"
    assert (info.input_size, list(info.mean), list(info.std)) == (64, card["mean"], card["std"])
    # without model.input_size a fine-tune uses the source weights' size, not the (smaller) pretraining size
    assert card["input_size"] == 64 and card["model_input_size"] == 224
    assert ModelInfo.for_backbone("efficientnet_lite0", f"file:{pretrained}", ["a", "b"]).input_size == 224


def test_pretrained_weights_of_another_backbone_are_refused(pretrained: Path) -> None:
    from medxfer.models.backbones import build_model
    from medxfer.models.weights import WeightsError, load_weights

    model = build_model("mobilenet_v2", 2)
    with pytest.raises(WeightsError, match="backbone efficientnet_lite0, but the backbone is mobilenet_v2"):
        load_weights(model, "mobilenet_v2", f"file:{pretrained}")


def test_a_folder_without_card_is_a_clear_error(tmp_path: Path) -> None:
    from medxfer.models.backbones import build_model
    from medxfer.models.weights import WeightsError, load_weights

    with pytest.raises(WeightsError, match="without card.json"):
        load_weights(build_model("custom_cnn", 2), "custom_cnn", f"file:{tmp_path}")


def test_bad_choices_name_the_flag_and_the_choices(tmp_path: Path) -> None:
    import medxfer
    from medxfer.pretraining.images import PretrainError

    with pytest.raises(PretrainError, match="--method 'mae'; choose one of: byol, dino, simclr"):
        medxfer.pretrain([f"folder:{KERMANY}"], tmp_path / "a", method="mae")
    with pytest.raises(PretrainError, match="--bn 'half'; choose one of: train, frozen"):
        medxfer.pretrain([f"folder:{KERMANY}"], tmp_path / "b", bn="half")
    with pytest.raises(PretrainError, match="--precision 'fp8'; choose one of: auto, auto-bf16, 32-true"):
        medxfer.pretrain([f"folder:{KERMANY}"], tmp_path / "c", precision="fp8")
    assert not any((tmp_path / name).exists() for name in "abc")  # refused before anything is written


def test_pretraining_precision_is_resolved_like_training(tmp_path: Path) -> None:
    from medxfer.pretraining.card import PretrainSettings
    from medxfer.pretraining.trainer import make_trainer

    cpu = PretrainSettings(data=["folder:x"], accelerator="cpu", precision="auto-bf16")
    expected = "bf16-mixed" if cpu_supports_bf16() else "32-true"  # emulated bf16 would be ~5x slower
    assert str(make_trainer(cpu, tmp_path / "t", [], progress=False).precision) == expected
    assert resolve_precision(None, on_gpu=True, gpu="bf16-mixed") == "bf16-mixed"  # pretraining's GPU default
    assert resolve_precision("auto-bf16", on_gpu=False, bf16_cpu=False, gpu="bf16-mixed") == "32-true"
