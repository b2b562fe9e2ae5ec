"""Pretraining recipes (``medxfer/configs/pretrain/NAME.yaml``): the settings of one pretraining.

Keys are the fields of :class:`~medxfer.pretraining.card.PretrainSettings` (``data`` a list of
``LAYOUT:PATH``, ``${MEDXFER_SHARED_DATA}`` expanded) plus ``name`` and ``exclude_eval_of: RECIPE``: the
validation and test images of that training recipe's split, made by the one data path
(:func:`medxfer.data.resolve.resolve_table`, the split ``medxfer train`` makes), are left out of
pretraining together with their near-copies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from medxfer.pretraining.card import PretrainSettings
from medxfer.pretraining.images import PretrainError

if TYPE_CHECKING:
    from medxfer.config import TrainConfig

EXTRA_KEYS = ("name", "exclude_eval_of")


def read_recipe(name: str | os.PathLike[str]) -> tuple[Path, dict]:
    """The file and raw mapping of pretraining recipe ``name`` (a recipe name or a YAML path)."""
    from medxfer.recipes import RecipeError, find_pretrain_recipe

    try:
        path = find_pretrain_recipe(name)
    except RecipeError as exc:
        raise PretrainError(str(exc)) from None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PretrainError(f"{path}: not valid YAML: {exc}") from None
    valid = sorted({f.name for f in fields(PretrainSettings)} | set(EXTRA_KEYS))
    unknown = sorted(set(data) - set(valid)) if isinstance(data, dict) else ["(not a mapping)"]
    if unknown:
        raise PretrainError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if not data.get("data"):
        raise PretrainError(f"{path}: no data; give data: [LAYOUT:PATH, ...]")
    return path, data


def recipe_key(name: str | os.PathLike[str]) -> str:
    """``NAME-<hash>``: the recipe's stem and a hash of its parsed settings and expanded data paths (the
    cache key). Comments and layout do not count: editing a comment does not run a cached pretraining
    again."""
    from medxfer.io import expand_vars

    path, data = read_recipe(name)
    specs = "\n".join(expand_vars(str(s)) for s in data["data"])
    settings = yaml.safe_dump(data, sort_keys=True)
    if data.get("exclude_eval_of"):  # its split decides which images are left out
        settings += "\n" + _split_settings(str(data["exclude_eval_of"]))
    digest = hashlib.sha256((settings + "\n" + specs).encode()).hexdigest()[:12]
    return f"{data.get('name') or path.stem}-{digest}"


def _split_settings(recipe: str) -> str:
    """The ``data`` block of training recipe ``recipe`` as text (sources, val/test share, seed, grouping)."""
    import dataclasses
    import json

    return json.dumps(dataclasses.asdict(_training_recipe(recipe).data), sort_keys=True, default=str)


def _training_recipe(recipe: str) -> TrainConfig:
    from medxfer.config import ConfigError, load_config

    try:
        return load_config(recipe)
    except ConfigError as exc:
        raise PretrainError(f"exclude_eval_of: {exc}") from None


def apply_sets(path: Path, data: dict, sets: Sequence[str]) -> dict:
    """``KEY=VALUE`` overrides (values parsed as YAML: ``max_images=null``) of a recipe's keys."""
    valid = sorted({f.name for f in fields(PretrainSettings)} | set(EXTRA_KEYS))
    out = dict(data)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in valid:
            raise PretrainError(f"{path}: --set {item!r}: expected KEY=VALUE, KEY one of: {', '.join(valid)}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_recipe(
    name: str | os.PathLike[str], progress: bool = False, sets: Sequence[str] = ()
) -> PretrainSettings:
    """The settings of pretraining recipe ``name`` (``sets`` override its keys), with ``exclude_eval_of``
    resolved to image paths."""
    from medxfer.io import expand_vars

    path, data = read_recipe(name)
    data = apply_sets(path, data, sets)
    source = data.pop("exclude_eval_of", None)
    data.pop("name", None)
    data["data"] = [expand_vars(str(s)) for s in data["data"]]
    settings = PretrainSettings(**data)
    if source:
        settings.exclude_paths = evaluation_paths(str(source), progress)
        settings.exclude_note = f"val/test split of recipe {source}"
    return settings


def evaluation_paths(recipe: str, progress: bool = False) -> list[str]:
    """The val and test image paths of training recipe ``recipe``, split as ``medxfer train`` splits it."""
    from medxfer.data.resolve import resolve_table

    frame = resolve_table(_training_recipe(recipe).data, progress=progress).table
    return sorted(frame.loc[frame["split"].isin(["val", "test"]), "path"])
