"""``medxfer pretrain``: self-supervised continuation of a registered backbone on unlabelled images.

Steps: settings (saved as ``OUT/pretrain.json``; ``--resume`` reads them back) -> images of the data
specs, labels ignored, evaluation images left out -> decoded once (:func:`load_prepared`) -> the
backbone's pooled embedding under an SSL method -> Lightning fit (``checkpoints/last.ckpt`` every
epoch, ``tb/``, ``logs/``) -> ``weights.safetensors`` (backbone keys) + ``card.json``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxfer.io import atomic_write_bytes, atomic_write_text
from medxfer.pretraining.card import CARD_FILE, SETTINGS_FILE, WEIGHTS_FILE, Card, PretrainSettings
from medxfer.pretraining.images import PretrainError

LIGHTLY_HINT = "medxfer pretrain needs lightly: pip install 'medxfer[pretrain]'"


@dataclass
class Prepared:
    """The images of a pretraining, decoded, with their preprocessing and what was left out."""

    images: Any  # (N, S, S) or (N, S, S, 3) uint8
    paths: list[str]
    channels: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    excluded: dict[str, int] = field(default_factory=dict)
    model_input_size: int = 224  # the source weights' own size: what a fine-tune of these weights uses


@dataclass
class PretrainResult:
    """Where the weights are (``file:OUT`` loads them) and their card."""

    out: Path
    card: dict[str, Any]

    @property
    def weights(self) -> str:
        return f"file:{self.out}"


def require_lightly() -> None:
    """One clear line when the optional dependency is missing."""
    if importlib.util.find_spec("lightly") is None:
        raise PretrainError(LIGHTLY_HINT)


def start_settings(
    out: Path, settings: PretrainSettings | None, resume: bool
) -> tuple[PretrainSettings, bool]:
    """The settings to run and whether a checkpoint is restored; never overwrites another run.

    A fresh run needs an ``out`` without a pretraining in it; ``resume`` reads ``OUT/pretrain.json``
    (the given settings are then only a fallback for a run that died before writing it).
    """
    saved, last = out / SETTINGS_FILE, out / "checkpoints" / "last.ckpt"
    if resume and saved.is_file():
        loaded = PretrainSettings.from_file(saved)
        if not last.is_file():
            print(f"resume: no checkpoint in {last.parent} yet; starting {out} from the beginning")
        return loaded, last.is_file()
    if settings is None:
        raise PretrainError(f"--resume {out}: no {SETTINGS_FILE} there; start it with --data ... --out {out}")
    if not resume and any((out / f).exists() for f in (SETTINGS_FILE, CARD_FILE, WEIGHTS_FILE)):
        raise PretrainError(f"{out}: holds a pretraining already; use --resume, or another --out")
    if out.is_file():
        raise PretrainError(f"--out {out}: is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, settings.to_json())
    return settings, False


def prepare_images(settings: PretrainSettings, progress: bool) -> Prepared:
    """The image list (labels ignored, evaluation images left out, capped) decoded at the input size."""
    from medxfer.data.cache import load_prepared
    from medxfer.data.resolve import resolve_channels
    from medxfer.models.backbones import get_spec
    from medxfer.models.weights import card_preprocess
    from medxfer.pretraining.hygiene import left_out
    from medxfer.pretraining.images import cap_images, gather_images

    paths = gather_images(settings.data)
    paths, excluded = left_out(paths, settings)
    paths = cap_images(paths, settings.max_images, settings.seed)
    if len(paths) < settings.batch_size:
        raise PretrainError(
            f"{len(paths)} image(s) left for pretraining, fewer than --batch-size {settings.batch_size}"
        )
    carried = card_preprocess(settings.weights)  # a pretraining may start from pretrained weights
    source_size, mean, std = carried or get_spec(settings.backbone).preprocess(settings.weights)
    channels = resolve_channels("auto", paths)
    images = load_prepared(paths, settings.input_size, channels, progress=progress, desc="pretraining")
    return Prepared(images, paths, channels, mean, std, excluded, source_size)


def build_method(settings: PretrainSettings, restore: bool):  # noqa: ANN201
    """The SSL method around the backbone, with the source weights loaded unless a checkpoint will be."""
    from medxfer.models.backbones import build_model
    from medxfer.models.weights import load_weights
    from medxfer.pretraining.methods import build_method as make

    model = build_model(settings.backbone, 2, weights="none")
    if not restore:
        load_weights(model, settings.backbone, settings.weights)
    return make(settings.method, model.backbone, model.num_features, settings.epochs)


def pretrain_run(
    out: str | Path,
    settings: PretrainSettings | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    epoch_callback: Callable[[int, dict[str, float]], None] | None = None,
) -> PretrainResult:
    """Run (or ``resume``) the pretraining ``settings`` into ``out``; see :func:`medxfer.pretrain`."""
    import lightning as L
    import torch

    from medxfer.pretraining.module import PretrainModule
    from medxfer.pretraining.trainer import (
        Clock,
        EpochEnd,
        ResumeNote,
        ViewData,
        default_workers,
        make_trainer,
        uses_gpu,
    )

    require_lightly()
    out = Path(out)
    if resume and (out / CARD_FILE).is_file():  # finished before: nothing left to run
        print(f"resume: {out} is finished already ({CARD_FILE} written); --weights file:{out}")
        return PretrainResult(out, json.loads((out / CARD_FILE).read_text()))
    if settings is not None:
        validate(settings)  # before anything is written into out
    settings, restore = start_settings(out, settings, resume)
    validate(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    prepared = prepare_images(settings, progress)
    method = build_method(settings, restore)
    on_gpu = uses_gpu(settings)
    steps = settings.epochs * (len(prepared.paths) // settings.batch_size)
    module = PretrainModule(
        method,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        total_steps=steps,
        bn=settings.bn,
        channels_last=settings.channels_last,
    )
    workers = settings.workers if settings.workers is not None else default_workers(on_gpu)
    data = ViewData(prepared.images, prepared.mean, prepared.std, settings, workers)
    clock = Clock()
    last = out / "checkpoints" / "last.ckpt"
    callbacks: list = [clock] + ([EpochEnd(epoch_callback)] if epoch_callback else [])
    callbacks += [ResumeNote(last)] if restore else []
    trainer = make_trainer(settings, out, callbacks, progress)
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if restore else None)
    final = trainer.callback_metrics.get("train_loss_epoch")
    return finish(out, settings, prepared, method.backbone, clock.seconds, final, str(trainer.precision))


def finish(  # noqa: PLR0913
    out: Path,
    settings: PretrainSettings,
    prepared: Prepared,
    backbone: Any,
    seconds: float,
    final_loss: Any,
    precision: str,
) -> PretrainResult:
    """Write ``weights.safetensors`` (the backbone's own keys) and ``card.json`` atomically."""
    from safetensors.torch import save

    from medxfer import __version__
    from medxfer.pretraining.images import list_sha256

    tensors = {
        k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
        for k, v in backbone.state_dict().items()
    }
    atomic_write_bytes(out / WEIGHTS_FILE, save(tensors))
    n = len(prepared.paths)
    card = Card(
        backbone=settings.backbone,
        source_weights=settings.weights,
        method=settings.method,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        input_size=settings.input_size,
        model_input_size=prepared.model_input_size,
        images=n,
        images_sha256=list_sha256(prepared.paths),
        excluded=prepared.excluded,
        mean=prepared.mean,
        std=prepared.std,
        channels=prepared.channels,
        seed=settings.seed,
        bn=settings.bn,
        precision=precision,
        wall_seconds=round(seconds, 1),
        images_per_second=round(
            settings.epochs * (n // settings.batch_size) * settings.batch_size / max(seconds, 1e-9), 2
        ),
        final_loss=None if final_loss is None else round(float(final_loss), 6),
        medxfer_version=__version__,
        data=list(settings.data),
        extra={
            "lr": settings.lr,
            "weight_decay": settings.weight_decay,
            "exclude_note": settings.exclude_note,
        },
    )
    atomic_write_text(out / CARD_FILE, card.to_json())
    return PretrainResult(out, json_dict(card))


def json_dict(card: Card) -> dict[str, Any]:
    return json.loads(card.to_json())


def validate(settings: PretrainSettings) -> None:
    """Each setting's range and choices; the message names the flag and the valid values."""
    from medxfer.config_checks import PRECISIONS
    from medxfer.models.backbones import get_spec
    from medxfer.pretraining.methods import METHODS, list_methods
    from medxfer.pretraining.module import BN_MODES

    get_spec(settings.backbone)
    if settings.method not in METHODS:
        raise PretrainError(f"--method {settings.method!r}; choose one of: {', '.join(list_methods())}")
    if settings.bn not in BN_MODES:
        raise PretrainError(f"--bn {settings.bn!r}; choose one of: {', '.join(BN_MODES)}")
    for name in ("epochs", "batch_size", "input_size"):
        if int(getattr(settings, name)) < (2 if name == "batch_size" else 1):
            raise PretrainError(f"--{name.replace('_', '-')} {getattr(settings, name)}: too small")
    if not settings.lr > 0:
        raise PretrainError(f"--lr {settings.lr}: give a positive learning rate")
    if settings.precision is not None and str(settings.precision) not in PRECISIONS:
        raise PretrainError(f"--precision {settings.precision!r}; choose one of: {', '.join(PRECISIONS)}")
