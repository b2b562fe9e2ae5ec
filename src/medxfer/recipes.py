"""Recipes by name (``medxfer train -c covid-3class`` finds ``covid-3class``).

Every recipe ships inside the package (``medxfer/configs``), so a pip-installed medxfer finds them by
name; ``configs/NAME.yaml`` still resolves to the packaged file. ``medxfer recipes`` lists them with
:func:`describe` (the first sentence of each file's leading comment).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path


class RecipeError(ValueError):
    """Neither a config file nor a known recipe name (``load_config`` turns it into a ConfigError)."""


def recipe_folders() -> list[Path]:
    """Where recipes are found by name: the packaged ``medxfer/configs``."""
    return [Path(__file__).resolve().parent / "configs"]


def list_recipes() -> list[str]:
    """Names of the recipes :func:`find_recipe` knows (``covid-3class``, ``demo``, ...)."""
    return sorted({f.stem for d in recipe_folders() for f in d.glob("*.yaml")})


def did_you_mean(words: str | list[str], choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``choices`` to each word (difflib), or ``""``.

    >>> did_you_mean("kermany-binray", ["kermany-binary", "colon"])
    "; did you mean 'kermany-binary'?"
    """
    close = [
        m
        for w in ([words] if isinstance(words, str) else words)
        for m in difflib.get_close_matches(w, choices, n=1)
    ]
    return f"; did you mean {' or '.join(repr(m) for m in close)}?" if close else ""


def find_recipe(name: str | os.PathLike[str]) -> Path:
    """A config file path as given, else a recipe by name (``covid-3class``); RecipeError lists them."""
    p = Path(name)
    if p.is_file():
        return p
    named = len(p.parts) == 1 or (len(p.parts) == 2 and p.parts[0] == "configs")
    if p.suffix in ("", ".yaml", ".yml") and named:
        for folder in recipe_folders():
            candidate = folder / f"{p.stem}.yaml"
            if candidate.is_file():
                return candidate
    hint = did_you_mean(p.stem, list_recipes()) if named else ""
    raise RecipeError(
        f"{p}: config file not found{hint}; give a YAML path or a recipe: {', '.join(list_recipes())}"
    )


def describe(name: str) -> str:
    """The first sentence of a recipe's leading ``#`` comment (what ``medxfer recipes`` prints)."""
    lines = []
    for line in find_recipe(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def list_pretrain_recipes() -> list[str]:
    """Names of the pretraining recipes (``medxfer/configs/pretrain/*.yaml``; not training recipes)."""
    return sorted({f.stem for d in recipe_folders() for f in (d / "pretrain").glob("*.yaml")})


def find_pretrain_recipe(name: str | os.PathLike[str]) -> Path:
    """A pretraining recipe file as given, else by name (``xray-lite0``); RecipeError lists them."""
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix in ("", ".yaml", ".yml") and len(p.parts) == 1:
        for folder in recipe_folders():
            candidate = folder / "pretrain" / f"{p.stem}.yaml"
            if candidate.is_file():
                return candidate
    raise RecipeError(
        f"{p}: pretraining recipe not found; give a YAML path or one of: {', '.join(list_pretrain_recipes())}"
    )
