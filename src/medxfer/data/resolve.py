"""The one data path: datasets of a config -> labelled table with patient-grouped splits -> channels.

Every consumer of a ``data:`` config section (``train``, ``tune`` in both modes, ``features``,
``classical``, ``demo``) resolves it here, so a rule added to data resolution (such as
``group_duplicates``: near-duplicate images count as one patient) holds for all of them.

Example::

    table = resolve_table(load_config("configs/colon.yaml").data)
    channels = resolve_channels("auto", list(table.table["path"]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medxfer.config import DataConfig
    from medxfer.data.datasets import ImageTable

CHANNELS = ("auto", "gray", "rgb")


def resolve_table(data: DataConfig, splits: str | os.PathLike[str] | None = None) -> ImageTable:
    """Load ``data.specs`` with the task, then apply a splits file or make the grouped split.

    Args:
        data: the ``data`` section of a config (specs, task, label_map, splits, val, test, seed,
            group_duplicates).
        splits: a splits.csv to apply instead of ``data.splits`` (a resumed run's own file).

    Returns:
        An ImageTable whose rows all have a split (see :func:`split_table`).

    Raises:
        ValueError: ``data.specs`` is empty; the loaders' and splitter's errors name the file or class.
    """
    return split_table(load_table(data), data, splits)


def load_table(data: DataConfig) -> ImageTable:
    """The labelled rows of ``data.specs`` under ``data.task`` / ``data.label_map`` (no split yet)."""
    from medxfer.data.datasets import load_datasets

    if not data.specs:
        raise ValueError("config: data.specs is empty; give at least one LAYOUT:PATH dataset")
    return load_datasets(data.specs, task=data.task, label_map=data.label_map)


def split_table(
    table: ImageTable,
    data: DataConfig,
    splits: str | os.PathLike[str] | None = None,
    duplicate_groups: list[list[str]] | None = None,
) -> ImageTable:
    """Apply ``splits`` (or ``data.splits``) if given, else make the patient-grouped split.

    With ``data.group_duplicates``, near-duplicate images are merged into one patient first so copies
    stay on one side; ``duplicate_groups`` (lists of paths, e.g. from ``medxfer check``) saves finding
    them again.
    """
    from medxfer.data.dedup import merge_duplicate_patients, merge_patients
    from medxfer.data.splits import apply_splits, assign_splits

    given = splits or data.splits
    if given:
        return apply_splits(table, given)
    if data.group_duplicates:
        if duplicate_groups is None:
            table, _ = merge_duplicate_patients(table)
        else:
            table, _ = merge_patients(table, duplicate_groups)
    return assign_splits(table, val=data.val, test=data.test, seed=data.seed)


def resolve_channels(channels: str, paths: Sequence[str]) -> str:
    """``gray`` or ``rgb``: ``channels`` itself, or for ``auto`` what a sample of ``paths`` holds.

    >>> resolve_channels("rgb", [])
    'rgb'
    """
    from medxfer.data.cache import detect_channels

    if channels not in CHANNELS:
        raise ValueError(f"channels {channels!r}; valid: {', '.join(CHANNELS)}")
    return detect_channels(list(paths)) if channels == "auto" else channels
