"""The built-in backbones: torchvision and timm networks with their classifiers removed, and a small CNN.

Each builder returns a module whose forward gives the pooled embedding ``(B, num_features)``; the
removed classifier's keys are the only keys of the library's state dict the backbone lacks, so library
weights load strictly after dropping them (:mod:`medxfer.models.weights`). VGG16 and AlexNet end in a
global average pool (as Keras ``include_top=False, pooling="avg"``) instead of their 100M+ parameter
fully connected layers. Stage lists and Grad-CAM layers are named functions (picklable specs).
"""

from __future__ import annotations

from torch import nn

from medxfer.models.registry import register_backbone

# ---------------------------------------------------------------- torchvision


def _tv(arch: str) -> nn.Module:
    import torchvision.models as tvm

    return tvm.get_model(arch, weights=None)


def _split_at_pools(features: nn.Sequential) -> list[nn.Module]:
    """VGG/AlexNet ``features`` cut after each max-pool: one block per resolution."""
    blocks, start = [], 0
    for i, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(features[start : i + 1])
            start = i + 1
    if start < len(features):
        blocks.append(features[start:])
    return blocks


def _resnet_blocks(m: nn.Module) -> list[nn.Module]:
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
    return [stem, m.layer1, m.layer2, m.layer3, m.layer4]


def _resnet_cam(m: nn.Module) -> nn.Module:
    return m.layer4[-1]


def _resnet(arch: str) -> nn.Module:
    net = _tv(arch)
    net.fc = nn.Identity()
    return net


@register_backbone(
    "resnet18",
    family="torchvision",
    blocks=_resnet_blocks,
    cam=_resnet_cam,
    default_weights="imagenet",
    description="ResNet-18 (torchvision)",
)
def resnet18() -> nn.Module:
    """ResNet-18, pooled 512-d embedding."""
    return _resnet("resnet18")


@register_backbone(
    "resnet50",
    family="torchvision",
    blocks=_resnet_blocks,
    cam=_resnet_cam,
    default_weights="imagenet",
    description="ResNet-50 (torchvision)",
)
def resnet50() -> nn.Module:
    """ResNet-50, pooled 2048-d embedding."""
    return _resnet("resnet50")


def _pool_blocks(m: nn.Module) -> list[nn.Module]:
    return _split_at_pools(m.features)


def _last_feature(m: nn.Module) -> nn.Module:
    return m.features[-1]


class GlobalPoolCNN(nn.Module):
    """``features`` (a torchvision VGG/AlexNet feature stack, same keys) + global average pool."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):  # noqa: ANN001, ANN201 - nn.Module signature
        return self.avgpool(self.features(x)).flatten(1)


def _features_only(arch: str) -> nn.Sequential:
    """The ``features`` of a torchvision net without allocating its 100M-parameter classifier."""
    import torch

    with torch.device("meta"):  # shapes only; the classifier is never materialised
        features = _tv(arch).features
    features = features.to_empty(device="cpu")
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            if arch.startswith("vgg"):  # torchvision VGG's own init (VGG.__init__)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            else:  # AlexNet keeps PyTorch's default init
                m.reset_parameters()
    return features


@register_backbone(
    "vgg16",
    family="torchvision",
    blocks=_pool_blocks,
    cam=_last_feature,
    default_weights="imagenet",
    description="VGG16 conv layers + global average pool",
)
def vgg16() -> nn.Module:
    """VGG16 convolutional part + global average pool, 512-d embedding."""
    return GlobalPoolCNN(_features_only("vgg16"))


@register_backbone(
    "alexnet",
    family="torchvision",
    blocks=_pool_blocks,
    cam=_last_feature,
    default_weights="imagenet",
    description="AlexNet conv layers + global average pool",
)
def alexnet() -> nn.Module:
    """AlexNet convolutional part + global average pool, 256-d embedding."""
    return GlobalPoolCNN(_features_only("alexnet"))


def _densenet_blocks(m: nn.Module) -> list[nn.Module]:
    f = m.features
    return [
        nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0),
        nn.Sequential(f.denseblock1, f.transition1),
        nn.Sequential(f.denseblock2, f.transition2),
        nn.Sequential(f.denseblock3, f.transition3),
        nn.Sequential(f.denseblock4, f.norm5),
    ]


@register_backbone(
    "densenet121",
    family="torchvision",
    blocks=_densenet_blocks,
    cam=_last_feature,
    default_weights="imagenet",
    description="DenseNet-121 (torchvision)",
)
def densenet121() -> nn.Module:
    """DenseNet-121, pooled 1024-d embedding."""
    net = _tv("densenet121")
    net.classifier = nn.Identity()
    return net


def _feature_blocks(m: nn.Module) -> list[nn.Module]:
    blocks = list(m.features)
    if any(True for _ in m.classifier.parameters()):  # mobilenet_v3 keeps its 960->1280 layer
        blocks.append(m.classifier)
    return blocks


@register_backbone(
    "mobilenet_v2",
    family="torchvision",
    blocks=_feature_blocks,
    cam=_last_feature,
    default_weights="packaged",
    description="MobileNetV2 (torchvision)",
)
def mobilenet_v2() -> nn.Module:
    """MobileNetV2, pooled 1280-d embedding."""
    net = _tv("mobilenet_v2")
    net.classifier = nn.Identity()
    return net


@register_backbone(
    "mobilenet_v3_large",
    family="torchvision",
    blocks=_feature_blocks,
    cam=_last_feature,
    default_weights="imagenet",
    description="MobileNetV3-Large (torchvision)",
)
def mobilenet_v3_large() -> nn.Module:
    """MobileNetV3-Large keeping its pre-logit 960->1280 layer + hardswish, 1280-d embedding."""
    net = _tv("mobilenet_v3_large")
    net.classifier = nn.Sequential(net.classifier[0], net.classifier[1])  # keys classifier.0.* unchanged
    return net


@register_backbone(
    "efficientnet_b0",
    family="torchvision",
    blocks=_feature_blocks,
    cam=_last_feature,
    default_weights="imagenet",
    description="EfficientNet-B0 (torchvision)",
)
def efficientnet_b0() -> nn.Module:
    """EfficientNet-B0, pooled 1280-d embedding."""
    net = _tv("efficientnet_b0")
    net.classifier = nn.Identity()
    return net


# ---------------------------------------------------------------- timm


def _timm_effnet_blocks(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv_stem, m.bn1), *m.blocks, nn.Sequential(m.conv_head, m.bn2)]


def _timm_effnet_cam(m: nn.Module) -> nn.Module:
    return m.bn2  # BatchNormAct2d: conv_head -> BN -> activation, the last feature map


def _timm(arch: str) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=0)


def _lite(i: int) -> dict:
    return {
        "family": "timm",
        "arch": f"tf_efficientnet_lite{i}",
        "blocks": _timm_effnet_blocks,
        "cam": _timm_effnet_cam,
        "default_weights": "packaged",
        "description": f"EfficientNet-Lite{i} (timm tf_efficientnet_lite{i})",
    }


@register_backbone("efficientnet_lite0", **_lite(0))
def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``), pooled 1280-d embedding."""
    return _timm("tf_efficientnet_lite0")


@register_backbone("efficientnet_lite1", **_lite(1))
def efficientnet_lite1() -> nn.Module:
    """EfficientNet-Lite1 (timm ``tf_efficientnet_lite1``), pooled 1280-d embedding."""
    return _timm("tf_efficientnet_lite1")


@register_backbone("efficientnet_lite2", **_lite(2))
def efficientnet_lite2() -> nn.Module:
    """EfficientNet-Lite2 (timm ``tf_efficientnet_lite2``), pooled 1280-d embedding."""
    return _timm("tf_efficientnet_lite2")


# ---------------------------------------------------------------- custom


class CustomCNN(nn.Module):
    """A small CNN: ``conv3x3 -> [BN] -> ReLU -> maxpool -> dropout`` blocks, then global average pool.

    The shape of the hand-built networks of the chest X-ray papers (e.g. 32-64-128-128 filters).
    """

    def __init__(
        self, channels: tuple[int, ...] = (32, 64, 128, 128), batch_norm: bool = True, dropout: float = 0.25
    ) -> None:
        super().__init__()
        blocks, c_in = [], 3
        for c in channels:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, padding=1, bias=not batch_norm),
                    nn.BatchNorm2d(c) if batch_norm else nn.Identity(),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                    nn.Dropout(dropout),
                )
            )
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))

    def forward(self, x):  # noqa: ANN001, ANN201 - nn.Module signature
        return self.pool(self.features(x))


def _custom_blocks(m: nn.Module) -> list[nn.Module]:
    return list(m.features)


def _custom_cam(m: nn.Module) -> nn.Module:
    return m.features[-1][2]  # last block's ReLU: the last conv feature map before pooling


@register_backbone(
    "custom_cnn",
    family="custom",
    blocks=_custom_blocks,
    cam=_custom_cam,
    preprocess=(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    description="small CNN, 4 conv-pool-dropout blocks (32-64-128-128), trained from scratch",
)
def custom_cnn() -> nn.Module:
    """The small custom CNN (random init only)."""
    return CustomCNN()
