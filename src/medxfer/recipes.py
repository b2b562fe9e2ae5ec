"""Recipes by name (``medxfer train -c covid-3class`` finds ``configs/covid-3class.yaml``).

Recipes are looked up in the packaged ``medxfer/configs`` (the demo recipe) and, in a source checkout,
the repository's ``configs/``.
"""

from __future__ import annotations

import os
from pathlib import Path


class RecipeError(ValueError):
    """Neither a config file nor a known recipe name (``load_config`` turns it into a ConfigError)."""


def recipe_folders() -> list[Path]:
    """Where recipes are found by name: the packaged ``medxfer/configs`` and, in a source checkout,
    the repository's ``configs/``."""
    package = Path(__file__).resolve().parent
    return [p for p in (package / "configs", package.parents[1] / "configs") if p.is_dir()]


def list_recipes() -> list[str]:
    """Names of the recipes :func:`find_recipe` knows (``covid-3class``, ``demo``, ...)."""
    return sorted({f.stem for d in recipe_folders() for f in d.glob("*.yaml")})


def find_recipe(name: str | os.PathLike[str]) -> Path:
    """A config file path as given, else a recipe by name (``covid-3class``); RecipeError lists them."""
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix in ("", ".yaml", ".yml") and len(p.parts) == 1:
        for folder in recipe_folders():
            candidate = folder / f"{p.stem}.yaml"
            if candidate.is_file():
                return candidate
    raise RecipeError(
        f"{p}: config file not found; give a YAML path or a recipe: {', '.join(list_recipes())}"
    )
