"""Backbone families: what depends on the library a network comes from (torchvision, timm, or none).

A :class:`Family` answers, for one of its architectures (``arch``, the library's own model name): the
preprocessing its weights expect, where the library caches its ImageNet weights and where it downloads
them from, and how state dicts of other publishers or older library versions are renamed to its keys.
Backbones name their family when registered (``register_backbone(..., family="timm")``); callers call
``spec.family.preprocess(spec.arch)`` and never compare family names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from medxfer.models import keymaps
from medxfer.registry import Registry

Preprocess = tuple[int, tuple[float, ...], tuple[float, ...]]  # (input_size, mean, std)
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


class Family:
    """A family without a library behind it (``custom``): no ImageNet weights, no preprocessing of its
    own (its backbones register ``preprocess=(size, mean, std)``), state dicts used as they are."""

    name = "custom"
    description = "networks defined here: trained from scratch, preprocessing given at registration"
    has_imagenet = False

    def preprocess(self, arch: str) -> Preprocess:
        """``(input_size, mean, std)`` of ``arch``'s library weights."""
        raise ValueError(
            f"family {self.name!r} has no preprocessing for {arch!r}; register the backbone with preprocess="
        )

    def imagenet_cache(self, arch: str) -> list[Path]:
        """Files where ImageNet weights of ``arch`` would be cached (existing or not), in lookup order."""
        return []

    def imagenet_url(self, arch: str) -> str:
        """Where ImageNet weights of ``arch`` are downloaded from."""
        raise ValueError(f"family {self.name!r} has no ImageNet weights")

    def download_imagenet(self, arch: str) -> dict[str, torch.Tensor]:
        """Download (through the library) and return ImageNet weights of ``arch``."""
        raise ValueError(f"family {self.name!r} has no ImageNet weights")

    def library_keys(self, state: Mapping[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
        """``state`` with the keys of other publishers / older versions renamed to this library's own."""
        del backbone
        return dict(state)

    def __repr__(self) -> str:
        return f"Family({self.name!r})"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_checkpoint(url: str) -> Path:
    """Where torch hub caches the file at ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


class Torchvision(Family):
    """torchvision models: weight enums (``Weights.transforms()``, ``url``), torch hub cache."""

    name = "torchvision"
    description = "torchvision models: weight enums, torch hub cache"
    has_imagenet = True

    @staticmethod
    def _weights(arch: str) -> Any:  # a torchvision WeightsEnum member
        from torchvision.models import get_model_weights

        return get_model_weights(arch).DEFAULT

    def preprocess(self, arch: str) -> Preprocess:
        tf = self._weights(arch).transforms()
        return int(tf.crop_size[0]), tuple(tf.mean), tuple(tf.std)

    def imagenet_cache(self, arch: str) -> list[Path]:
        return [hub_checkpoint(self._weights(arch).url)]

    def imagenet_url(self, arch: str) -> str:
        return self._weights(arch).url

    def download_imagenet(self, arch: str) -> dict[str, torch.Tensor]:
        return dict(self._weights(arch).get_state_dict(progress=False))

    def library_keys(self, state: Mapping[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
        del backbone
        return keymaps.densenet_legacy_keys(state)


class Timm(Family):
    """timm models: ``pretrained_cfg`` (input size, mean, std, Hugging Face id or URL)."""

    name = "timm"
    description = "timm models: pretrained_cfg, Hugging Face or torch hub cache"
    has_imagenet = True

    @staticmethod
    def _cfg(arch: str) -> Any:  # timm PretrainedCfg
        import timm

        cfg = timm.get_pretrained_cfg(arch)
        if cfg is None:
            raise ValueError(f"timm has no pretrained config for {arch!r}")
        return cfg

    def preprocess(self, arch: str) -> Preprocess:
        cfg = self._cfg(arch)
        return int(cfg.input_size[-1]), tuple(cfg.mean), tuple(cfg.std)

    def imagenet_cache(self, arch: str) -> list[Path]:
        cfg = self._cfg(arch)
        paths: list[Path] = []
        if cfg.hf_hub_id:
            repo = hf_cache_dir() / f"models--{cfg.hf_hub_id.replace('/', '--')}" / "snapshots"
            names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
            found = sorted(p for name in names for p in repo.glob(f"*/{name}"))
            paths += found or [repo / "<revision>" / names[0]]
        if cfg.url:
            paths.append(hub_checkpoint(cfg.url))
        return paths

    def imagenet_url(self, arch: str) -> str:
        cfg = self._cfg(arch)
        if cfg.hf_hub_id:
            file = cfg.hf_hub_filename or _HF_FILES[0]
            return f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{file}"
        return cfg.url

    def download_imagenet(self, arch: str) -> dict[str, torch.Tensor]:
        import timm

        return dict(timm.create_model(arch, pretrained=True, num_classes=0).state_dict())

    def library_keys(self, state: Mapping[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
        if "_conv_stem.weight" in state:  # lukemelas EfficientNet naming
            return keymaps.lukemelas_effnet_to_timm(state, backbone)
        return dict(state)


FAMILIES: Registry[Family] = Registry("backbone family")
for _family in (Family(), Torchvision(), Timm()):
    FAMILIES.register(_family.name, _family)
