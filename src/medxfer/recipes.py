"""Recipes by name (``medxfer train -c covid-3class`` finds ``configs/covid-3class.yaml``) and the
schedule a recipe gets for a network without pretrained weights.

Recipes are looked up in the packaged ``medxfer/configs`` (the demo recipe) and, in a source checkout,
the repository's ``configs/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medxfer.config import StageConfig, TrainConfig


def recipe_folders() -> list[Path]:
    """Where recipes are found by name: the packaged ``medxfer/configs`` and, in a source checkout,
    the repository's ``configs/``."""
    package = Path(__file__).resolve().parent
    return [p for p in (package / "configs", package.parents[1] / "configs") if p.is_dir()]


def list_recipes() -> list[str]:
    """Names of the recipes :func:`find_recipe` knows (``covid-3class``, ``demo``, ...)."""
    return sorted({f.stem for d in recipe_folders() for f in d.glob("*.yaml")})


def find_recipe(name: str | os.PathLike[str]) -> Path:
    """A config file path as given, else a recipe by name (``covid-3class``); ConfigError lists them."""
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix in ("", ".yaml", ".yml") and len(p.parts) == 1:
        for folder in recipe_folders():
            candidate = folder / f"{p.stem}.yaml"
            if candidate.is_file():
                return candidate
    from medxfer.config import ConfigError

    raise ConfigError(
        f"{p}: config file not found; give a YAML path or a recipe: {', '.join(list_recipes())}"
    )


def scratch_warning(cfg: TrainConfig) -> str | None:
    """A warning when a randomly initialised network gets stages that keep most of it frozen."""
    frozen = [s.name for s in cfg.stages if s.trainable != "all"]
    if cfg.model.weights != "none" or not frozen:
        return None
    return (
        f"model.weights=none: {cfg.model.backbone} starts from random weights, but stage(s) "
        f"{', '.join(frozen)} train only part of it (a random frozen backbone learns little); "
        "give stages with trainable: all, or pretrained weights"
    )


def scratch_stages(cfg: TrainConfig) -> list[StageConfig]:
    """The default schedule for a network trained from scratch: every layer, the same epochs in all."""
    from medxfer.config import StageConfig

    return [StageConfig(name="scratch", epochs=cfg.total_epochs, trainable="all", lr=1e-3)]
