"""The one data path: a config's ``data`` section (:class:`DataConfig`) -> labelled table with
patient-grouped splits -> channels.

Every consumer of a ``data:`` config section (``train``, ``tune`` in both modes, ``features``,
``classical``, ``demo``) resolves it here, so a rule added to data resolution (such as
``data.duplicates: group``: near-duplicate images count as one patient) holds for all of them.

Example::

    table = resolve_table(load_config("colon").data)
    channels = resolve_channels("auto", list(table.table["path"]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medxfer.data.check import CheckReport
    from medxfer.data.datasets import ImageTable

CHANNELS = ("auto", "gray", "rgb")


@dataclass
class DataConfig:
    """Which images, which labels, which split."""

    specs: list[str] = field(default_factory=list)  # LAYOUT:PATH; ${VAR} expanded (e.g. MEDXFER_SHARED_DATA)
    task: str | None = None  # a named task of medxfer.data.datasets.TASKS
    label_map: dict[str, str | None] | None = None
    splits: str | None = None  # an existing splits.csv; else made with val/test/seed below
    val: float = 0.2
    test: float = 0.0
    seed: int = 0
    duplicates: str = "group"  # group | drop-cross-class | keep (see medxfer.data.leaks)
    allow_leaks: bool = False  # train even when duplicate images straddle splits (e.g. a given splits.csv)
    limit_per_class: int | None = None  # at most N images per class in every split (quick runs)
    channels: str = "auto"  # auto (from the data) | gray | rgb
    mask_boxes: list[list[float]] = field(default_factory=list)  # relative [x0, y0, x1, y1]


def resolve_table(
    data: DataConfig,
    splits: str | os.PathLike[str] | None = None,
    *,
    input_size: int | None = None,
    progress: bool = False,
) -> ImageTable:
    """Load ``data.specs`` with the task, then apply a splits file or make the checked, grouped split.

    Args:
        data: the ``data`` section of a config (specs, task, label_map, splits, val, test, seed,
            duplicates, allow_leaks).
        splits: a splits.csv to apply as it is (a resumed run's own file; no check is made).
        input_size: the model's input size, for check's size findings.
        progress: show check's progress bar.

    Returns:
        An ImageTable whose rows all have a split (see :func:`checked_split`).

    Raises:
        ValueError: ``data.specs`` is empty; :class:`~medxfer.data.leaks.LeakError` when duplicates
            straddle the splits and ``data.allow_leaks`` is off; the loaders' errors name the file.
    """
    from medxfer.data.splits import apply_splits

    table = load_table(data)
    if splits:
        return apply_splits(table, splits)
    return checked_split(table, data, input_size=input_size, progress=progress)[0]


def load_table(data: DataConfig) -> ImageTable:
    """The labelled rows of ``data.specs`` under ``data.task`` / ``data.label_map`` (no split yet)."""
    from medxfer.data.datasets import load_datasets

    if not data.specs:
        raise ValueError("config: data.specs is empty; give at least one LAYOUT:PATH dataset")
    return load_datasets(data.specs, task=data.task, label_map=data.label_map)


def checked_split(
    table: ImageTable, data: DataConfig, *, input_size: int | None = None, progress: bool = True
) -> tuple[ImageTable, CheckReport]:
    """``check`` (cached by the data) + ``data.duplicates`` policy + split (``data.splits`` or a new
    patient-grouped one): returns ``(table, check report for that split)``.

    Raises :class:`~medxfer.data.leaks.LeakError` when duplicate groups straddle the splits and
    ``data.allow_leaks`` is off.
    """
    from medxfer.data.leaks import (
        LeakError,
        apply_duplicates_policy,
        cached_check,
        report_for_split,
        split_leaks,
    )
    from medxfer.data.splits import apply_splits, assign_splits

    report, reused = cached_check(table, progress=progress)
    if data.splits:
        table = apply_splits(table, data.splits)
    table, dropped = apply_duplicates_policy(table, report, data.duplicates)
    if not data.splits:
        table = assign_splits(table, val=data.val, test=data.test, seed=data.seed)
    report = report_for_split(report, table, input_size)
    report.settings.update(duplicates=data.duplicates, dropped=dropped, reused_cached_check=reused)
    leaks = split_leaks(report)
    if leaks and not data.allow_leaks:
        example = ", ".join(leaks[0]["paths"][:2])
        raise LeakError(
            f"{len(leaks)} group(s) of duplicate images straddle the splits (e.g. {example}): "
            "validation images would leak into training. Use data.duplicates: group or drop-cross-class "
            "with a split made here (no data.splits), or pass --allow-leaks (data.allow_leaks: true)"
        )
    return table, report


def resolve_channels(channels: str, paths: Sequence[str]) -> str:
    """``gray`` or ``rgb``: ``channels`` itself, or for ``auto`` what a sample of ``paths`` holds.

    >>> resolve_channels("rgb", [])
    'rgb'
    """
    from medxfer.data.cache import detect_channels

    if channels not in CHANNELS:
        raise ValueError(f"channels {channels!r}; valid: {', '.join(CHANNELS)}")
    return detect_channels(list(paths)) if channels == "auto" else channels
