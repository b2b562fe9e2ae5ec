"""``medxfer.pretrain``: the one function behind ``medxfer pretrain`` (re-exported by :mod:`medxfer.api`).

Only the standard library is imported here, so ``import medxfer.api`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medxfer.pretraining.engine import PretrainResult

PathLike = str | os.PathLike[str]


def pretrain(
    data: Sequence[str] | None = None,
    out: PathLike | None = None,
    *,
    backbone: str = "efficientnet_lite0",
    weights: str = "packaged",
    method: str = "byol",
    epochs: int = 10,
    input_size: int = 160,
    batch_size: int = 32,
    lr: float = 3e-4,
    bn: str = "train",
    precision: str | None = None,
    channels_last: bool = True,
    seed: int = 0,
    max_images: int | None = None,
    splits: PathLike | None = None,
    include_eval: bool = False,
    accelerator: str = "auto",
    workers: int | None = None,
    threads: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Adapt ``backbone`` (from ``weights``) to the unlabelled images of ``data`` by self-supervision
    (``method``: byol | simclr | dino, via ``lightly``) into ``out``: ``weights.safetensors`` + ``card.json``,
    loaded by ``weights="file:OUT"``. The val/test images of ``splits`` and their near-copies stay out
    (``include_eval`` keeps them, warned). ``resume=True`` continues ``out`` with its saved settings.

    Example: ``medxfer.pretrain(["kermany:data/kermany"], out="pre/x", epochs=5).weights  # 'file:pre/x'``
    """
    from medxfer.pretraining.card import PretrainSettings
    from medxfer.pretraining.engine import pretrain_run

    if out is None:
        raise ValueError("pretrain: give out='pretrained/NAME' (the folder to create or resume)")
    settings = None
    if data:
        settings = PretrainSettings(
            data=[str(d) for d in data],
            backbone=backbone,
            weights=weights,
            method=method,
            epochs=epochs,
            input_size=input_size,
            batch_size=batch_size,
            lr=lr,
            bn=bn,
            precision=precision,
            channels_last=channels_last,
            seed=seed,
            max_images=max_images,
            splits=None if splits is None else str(splits),
            include_eval=include_eval,
            accelerator=accelerator,
            workers=workers,
            threads=threads,
        )
    return pretrain_run(out, settings, resume=resume, progress=progress)


def pretrain_recipe(
    config: PathLike,
    out: PathLike,
    *,
    sets: Sequence[str] = (),
    resume: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Run pretraining recipe ``config`` (a name of ``configs/pretrain/``, e.g. ``xray-lite0``, or a YAML
    path) into ``out``; ``sets`` override its keys (``["epochs=20", "max_images=null"]``).

    Example: ``pretrain_recipe("xray-lite0", "pre/xray", sets=["epochs=2"]).weights  # 'file:pre/xray'``
    """
    from medxfer.pretraining.engine import pretrain_run
    from medxfer.pretraining.recipes import load_recipe

    settings = None if resume else load_recipe(config, progress=progress, sets=sets)
    return pretrain_run(out, settings, resume=resume, progress=progress)
