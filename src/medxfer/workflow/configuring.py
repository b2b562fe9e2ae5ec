"""A training config from a recipe plus what the user asked: the one path of ``medxfer train`` and
:func:`medxfer.train` (and ``lr-find``, ``make_config``).

Policies decided here, once:

- overrides are ``key=value`` strings with YAML values (:func:`override_strings` builds them from a dict);
- another backbone without weights named starts from *its own* listed default weights;
- ``model.weights: none`` with the default stages trains every layer in every epoch (a random frozen
  backbone learns little); a recipe's own stages that freeze part of a random network get a warning;
- ``epochs`` sets the epochs of every stage (quick tries).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medxfer.config import TrainConfig

PathLike = str | os.PathLike[str]


def override_strings(overrides: Mapping[str, Any]) -> list[str]:
    """``{"train.batch_size": 16, "model.backbone": "resnet50"}`` -> ``["train.batch_size=16", ...]``.

    Keys are dotted config keys; values are written as YAML, which
    :func:`medxfer.config.load_config` parses back, so lists, paths and ``None`` survive.
    """
    import yaml

    out = []
    for key, value in overrides.items():
        value = os.fspath(value) if isinstance(value, os.PathLike) else value
        if isinstance(value, tuple):
            value = list(value)
        dump = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
        dump = dump.removesuffix("\n...").removesuffix("...").strip()
        out.append(f"{key}={dump}")
    return out


def scratch_schedule(cfg: TrainConfig, custom_stages: bool) -> str | None:
    """Random weights with the default stages: one stage that trains all layers (same total epochs).

    Returns the note to show, or a warning when the recipe's own stages freeze part of a random
    network (then the stages are kept), or None when the weights are pretrained.
    """
    from medxfer.config import StageConfig

    frozen = [s.name for s in cfg.stages if s.trainable != "all"]
    if cfg.model.weights != "none" or not frozen:
        return None
    if custom_stages:
        return (
            f"warning: model.weights=none: {cfg.model.backbone} starts from random weights, but stage(s) "
            f"{', '.join(frozen)} train only part of it (a random frozen backbone learns little); "
            "give stages with trainable: all, or pretrained weights"
        )
    cfg.stages = [StageConfig(name="scratch", epochs=cfg.total_epochs, trainable="all", lr=1e-3)]
    return f"note: {cfg.model.backbone} has no pretrained weights here: all layers train in every epoch"


def build_config(
    config: TrainConfig | PathLike | None = None,
    *,
    data: Sequence[str] | None = None,
    task: str | None = None,
    splits: PathLike | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    epochs: int | None = None,
    allow_leaks: bool = False,
    sets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    log: Callable[[str], Any] | None = None,
) -> TrainConfig:
    """The config a training run uses: ``config`` (recipe name/path, a TrainConfig, or None: defaults),
    then ``sets`` (``key=value`` strings), ``overrides`` (a dict of config keys), then the shortcuts.

    Raises :class:`~medxfer.config.ConfigError` on an unknown key or bad value. The note about the
    from-scratch schedule goes to ``log``.

    Example::

        cfg = build_config("kermany-binary", backbone="resnet50", epochs=1)   # resnet50's own weights
    """
    from medxfer.config import ConfigError, TrainConfig, apply_override, from_dict, load_config

    if backbone is not None and weights is None:
        weights = "default"  # another backbone starts from its own listed default weights
    asked = {"data.specs": list(data) if data else None, "data.task": task, "data.splits": splits}
    asked |= {"model.backbone": backbone, "model.weights": weights}
    asked |= {"data.allow_leaks": True} if allow_leaks else {}
    strings = [*sets, *override_strings(dict(overrides or {})), *override_strings(_given(asked))]
    if isinstance(config, TrainConfig):
        plain = asdict(config)
        for s in strings:
            apply_override(plain, s)
        cfg = from_dict(plain)
    else:
        cfg = load_config(config, strings)
    custom = config is not None or any(s.split("=", 1)[0].startswith("stages") for s in strings)
    message = scratch_schedule(cfg, custom_stages=custom)
    if message and log is not None:
        log(message)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"epochs {epochs}: give at least 1")
        for stage in cfg.stages:
            stage.epochs = epochs
    return cfg


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
