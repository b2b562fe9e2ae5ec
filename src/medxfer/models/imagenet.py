"""ImageNet weights through the libraries' own mechanisms, offline-aware.

Each backbone family (:mod:`medxfer.models.families`) says where its library caches and downloads them.
The cache is looked up first (torch hub ``checkpoints/`` for torchvision and timm URLs, the Hugging Face
hub cache for timm ``hf_hub_id``), reading the environment at call time (``TORCH_HOME``, ``HF_HOME``,
``HF_HUB_CACHE``). Only when nothing is cached is the network tried: ``HF_HUB_OFFLINE=1`` or
``MEDXFER_OFFLINE=1`` refuse at once, otherwise a short probe (a few seconds) decides before any download,
so an offline machine gets a :class:`~medxfer.models.weights.WeightsError` naming the alternatives quickly.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from medxfer.models.weights import WeightsError, alternatives, read_state_file, register_weight_source

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch import nn

    from medxfer.models.registry import BackboneSpec

PROBE_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 60.0


def cache_candidates(spec: BackboneSpec) -> list[Path]:
    """Files where ImageNet weights of ``spec`` would be cached (existing or not), in lookup order."""
    return spec.family.imagenet_cache(spec.arch)


def _cached_file(spec: BackboneSpec) -> Path | None:
    return next((p for p in cache_candidates(spec) if p.is_file()), None)


def network_error(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url`` cannot be reached (``None`` if its server answers): one HEAD request, ``timeout`` s."""
    for var in ("MEDXFER_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").lower() in ("1", "true", "yes", "on"):
            return f"offline mode ({var}={os.environ[var]})"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # the server answered (403/404/redirect quirks): the network works
    except (OSError, ValueError) as exc:  # URLError, timeouts, DNS failures
        return f"network unreachable ({getattr(exc, 'reason', exc)})"
    return None


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # the libraries' downloaders open URLs without a timeout; a stalled connection must not hang forever
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    with _socket_timeout(DOWNLOAD_TIMEOUT_S):
        return spec.family.download_imagenet(spec.arch)


def imagenet_state(spec: BackboneSpec) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet state dict of ``spec``'s library model and where it came from (cache file or URL).

    Raises :class:`WeightsError` within seconds when nothing is cached and the network is unreachable.
    """
    if not spec.family.has_imagenet:
        raise WeightsError(
            f"no ImageNet weights for {spec.name} (it trains from scratch); use --weights none"
        )
    cached = _cached_file(spec)
    if cached is not None:
        state, where = read_state_file(cached), str(cached)
    else:
        url = spec.family.imagenet_url(spec.arch)
        reason = network_error(url)
        if reason is not None:
            looked = ", ".join(str(p) for p in cache_candidates(spec))
            raise WeightsError(
                f"imagenet weights for {spec.name} are not cached (looked in {looked}) and cannot be "
                f"downloaded from {url}: {reason}. {alternatives(spec.name)}"
            )
        try:
            state, where = _download(spec), url
        except Exception as exc:  # any download/parse failure becomes one actionable error
            raise WeightsError(
                f"imagenet weights for {spec.name}: download from {url} failed ({exc}). "
                f"{alternatives(spec.name)}"
            ) from exc
    return state, where


def imagenet_status(spec: BackboneSpec) -> str:
    """``"ok"`` when ImageNet weights of ``spec`` are cached here, else why not (no download, no probe)."""
    if not spec.family.has_imagenet:
        return "none exist (trained from scratch)"
    cached = _cached_file(spec)
    if cached is not None:
        return "ok"
    return f"needs network (not cached: {cache_candidates(spec)[0]})"


@register_weight_source("imagenet", status=imagenet_status, rank=10)
def _imagenet_source(spec: BackboneSpec, backbone: nn.Module, path: Path | None) -> tuple[dict, str]:
    """The library's own ImageNet weights (cache first, network only when reachable)."""
    state, where = imagenet_state(spec)
    return spec.family.library_keys(state, backbone), where  # e.g. densenet's legacy key names
