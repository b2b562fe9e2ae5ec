"""Datasets: every layout becomes one :class:`ImageTable` (the contract in docs/contracts.md).

A dataset on the command line is ``LAYOUT:PATH`` with optional ``?key=value&...`` options
(a bare ``PATH`` means ``folder``), e.g. ``kermany:data/kermany``,
``csv:colon/labels.csv?path=file&label=class``. Layouts (see :mod:`medxfer.data.layouts` and
:mod:`medxfer.data.manifests`) produce *raw* labels; a task from :data:`TASKS` (or a ``label_map``)
maps them to class names and drops the rows it does not name. Without either, the raw labels are
the class names.

Class order: a task with an explicit order keeps it (binary tasks: ``[negative, positive]``, so
``class_names[1]`` is the positive class: ``["normal", "pneumonia"]``, ``["normal", "covid"]``);
otherwise class names are sorted alphabetically.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medxfer.data import manifests  # noqa: F401  (registers the csv and metadata.csv layouts)
from medxfer.data.layouts import DatasetError, get_layout, list_layouts

__all__ = [
    "TASKS",
    "DatasetError",
    "ImageTable",
    "Task",
    "list_layouts",
    "list_tasks",
    "load_dataset",
    "load_datasets",
    "parse_spec",
]

COLUMNS = ("path", "label", "label_name", "patient_id", "source", "view", "split")


@dataclass(frozen=True)
class Task:
    """A named label mapping: raw label -> class name (None or absent = dropped)."""

    mapping: dict[str, str | None]
    classes: tuple[str, ...] | None = None  # explicit class order; None = sorted
    description: str = ""


TASKS: dict[str, Task] = {
    "kermany-binary": Task(
        {"normal": "normal", "bacterial": "pneumonia", "viral": "pneumonia", "pneumonia": "pneumonia"},
        ("normal", "pneumonia"),
        "normal vs pneumonia (bacterial + viral)",
    ),
    "kermany-3class": Task(
        {"normal": "normal", "bacterial": "bacterial", "viral": "viral"},
        None,
        "normal / bacterial / viral pneumonia",
    ),
    "covid-vs-normal": Task(
        {"covid": "covid", "normal": "normal"}, ("normal", "covid"), "normal vs COVID-19"
    ),
    "covid-3class": Task(
        {"covid": "covid", "normal": "normal", "viral": "viral"},
        None,
        "COVID-19 / normal / viral pneumonia",
    ),
    "covid-4class": Task(
        {"covid": "covid", "normal": "normal", "bacterial": "bacterial", "viral": "viral"},
        None,
        "COVID-19 / normal / bacterial / viral pneumonia",
    ),
}


def list_tasks() -> list[str]:
    """Names of the predefined tasks, sorted."""
    return sorted(TASKS)


@dataclass
class ImageTable:
    """Class names plus a row-aligned table (columns: see COLUMNS; ``label`` indexes class_names)."""

    class_names: list[str]
    table: pd.DataFrame = field(repr=False)
    unknown: dict[str, int] = field(default_factory=dict, repr=False)  # raw label -> rows left out

    @property
    def labels(self) -> np.ndarray:
        """Integer labels, row-aligned with ``table``."""
        return self.table["label"].to_numpy(dtype=np.int64)

    def subset(self, split: str) -> ImageTable:
        """The rows of one split (``"train"``, ``"val"``, ``"test"`` or ``""``), same class names."""
        rows = self.table[self.table["split"] == split].reset_index(drop=True)
        return ImageTable(list(self.class_names), rows, dict(self.unknown))

    def with_table(self, table: pd.DataFrame) -> ImageTable:
        """A new ImageTable with the same class names and ``table`` (index reset)."""
        return ImageTable(list(self.class_names), table.reset_index(drop=True), dict(self.unknown))

    def counts(self) -> pd.DataFrame:
        """Images per split (rows) and class (columns), classes in class_names order."""
        counts = pd.crosstab(self.table["split"].replace("", "(none)"), self.table["label_name"])
        return counts.reindex(columns=self.class_names, fill_value=0)

    def __len__(self) -> int:
        return len(self.table)


_SPEC = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.+)$")


def parse_spec(spec: str) -> tuple[str, Path, dict[str, str]]:
    """Split ``LAYOUT:PATH?k=v&k=v`` into (layout, path, options); a bare PATH is ``folder``.

    Example:
        >>> parse_spec("csv:labels.csv?label=class")
        ('csv', PosixPath('labels.csv'), {'label': 'class'})
    """
    options: dict[str, str] = {}
    body = spec
    if "?" in spec:
        body, _, query = spec.rpartition("?")
        for item in filter(None, query.split("&")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise DatasetError(f"dataset {spec!r}: option {item!r} is not KEY=VALUE")
            options[key.strip()] = value.strip()
    match = _SPEC.match(body)
    if match and (match.group(1) in list_layouts() or not os.path.exists(body)):
        return match.group(1), Path(match.group(2)).expanduser(), options
    return "folder", Path(body).expanduser(), options


def resolve_path(path: str | os.PathLike[str], fallback: str | os.PathLike[str] | None = None) -> Path:
    """``path`` made absolute: against the working directory when it exists there, else against
    ``fallback`` (e.g. the folder of an old run that stored relative paths) when it exists there."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists() or fallback is None or not (Path(fallback) / path).exists():
        return Path(os.path.abspath(path))
    return Path(os.path.abspath(Path(fallback) / path))


def absolute_spec(spec: str, fallback: str | os.PathLike[str] | None = None) -> str:
    """``LAYOUT:PATH?options`` with PATH absolute (see :func:`resolve_path`): what a run stores, so it
    evaluates from any working directory. A relative PATH found nowhere is left as given (its error
    names it as the user wrote it).

    Example: ``absolute_spec("kermany:../data/kermany")`` -> ``"kermany:/home/me/data/kermany"``.
    """
    layout, path, _ = parse_spec(spec)
    if not path.is_absolute() and not path.exists():
        if fallback is None or not (Path(fallback) / path).exists():
            return spec
    query = spec.rpartition("?")[2] if "?" in spec else ""
    return f"{layout}:{resolve_path(path, fallback)}" + (f"?{query}" if query else "")


def absolute_paths(
    specs: list[str], splits: str | None, fallback: str | os.PathLike[str] | None = None
) -> tuple[list[str], str | None]:
    """A config's ``data.specs`` and ``data.splits`` with absolute paths (:func:`absolute_spec`)."""
    return [absolute_spec(s, fallback) for s in specs], str(
        resolve_path(splits, fallback)
    ) if splits else None


def load_dataset(spec: str) -> pd.DataFrame:
    """List one dataset spec into a raw table (raw label names, no mapping); decodes no image.

    Image paths are absolute (the spec's path resolved against the working directory), so a run's
    ``splits.csv`` names its images from wherever it is read.
    """
    layout, path, options = parse_spec(spec)
    path = Path(os.path.abspath(path))
    frame = get_layout(layout)(path, options)
    if frame.empty:
        raise DatasetError(f"{path}: no images found (layout {layout})")
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def _mapping(task: str | None, label_map: dict[str, str | None] | None) -> tuple[dict, Task | None]:
    if task is not None and task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; valid tasks: {', '.join(list_tasks())}")
    chosen = TASKS[task] if task else None
    mapping: dict[str, str | None] = dict(chosen.mapping) if chosen else {}
    mapping.update(label_map or {})
    return mapping, chosen


_UNMAPPED = "\0unmapped"  # a raw label the mapping does not name (None = dropped on purpose)


def _map_label(raw: str, mapping: dict[str, str | None], folded: dict[str, str | None]) -> str | None:
    """The class name of a raw label: exact key first, then ignoring case (``NORMAL/`` = ``normal``)."""
    if raw in mapping:
        return mapping[raw]
    return folded.get(raw.casefold(), _UNMAPPED)


def _counts(labels: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}


def _nothing_left(
    raw: pd.Series, task: str | None, label_map: dict | None, specs: list[str], classes: list[str] | None
) -> str:
    """The error when no row keeps a label: the raw labels with counts and what to pass."""
    found = ", ".join(f"{k}: {v:,}" for k, v in _counts(raw).items())
    known = f"; the model knows {', '.join(classes)}" if classes is not None else ""
    return (
        f"no image left after mapping labels (task={task}, label_map={label_map}) for {', '.join(specs)}: "
        f"its labels are {found}{known}. Pass a task (--task; one of {', '.join(list_tasks())}), a label "
        "map (evaluate --label-map RAW=CLASS; data.label_map in a recipe) or a layout that names the "
        "classes (e.g. kermany:PATH)"
    )


def _assign_labels(
    frame: pd.DataFrame, mapping: dict, classes: list[str] | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``label_name`` per row; rows dropped on purpose (mapped to None) go, and with ``classes``, rows
    whose label is none of them (ignoring case) go too, counted by raw label in the returned dict."""
    folded = {str(k).casefold(): v for k, v in mapping.items()}
    if mapping:
        names = frame["raw_label"].map(lambda raw: _map_label(raw, mapping, folded))
    else:
        names = frame["raw_label"].astype(object)
    if classes is None:  # a task keeps the labels it names; the others are counted
        unmapped = names == _UNMAPPED
        keep = names.notna() & ~unmapped
        return frame.assign(label_name=names)[keep].reset_index(drop=True), _counts(
            frame["raw_label"][unmapped]
        )
    canonical = {c.casefold(): c for c in classes}
    names = names.map(lambda n: None if pd.isna(n) else canonical.get(str(n).casefold(), _UNMAPPED))
    unknown = names == _UNMAPPED
    dropped = _counts(frame["raw_label"][unknown])
    keep = names.notna() & ~unknown
    return frame.assign(label_name=names)[keep].reset_index(drop=True), dropped


def load_datasets(
    specs: list[str],
    task: str | None = None,
    label_map: dict[str, str | None] | None = None,
    classes: list[str] | None = None,
) -> ImageTable:
    """Load, concatenate and label-map datasets.

    Args:
        specs: ``LAYOUT:PATH[?options]`` strings (bare PATH = folder).
        task: a name from :data:`TASKS`; rows whose raw label it does not map are dropped.
        label_map: raw label -> class name (None drops), applied over the task's map. Raw labels
            match the keys ignoring case when no key matches exactly.
        classes: a model's class names (evaluation): they become ``class_names`` in that order, labels
            match them ignoring case, and rows of other labels are left out. Rows left out because
            neither the mapping nor ``classes`` names their label are counted by raw label in
            ``unknown`` (training ignores it; evaluation applies :func:`refuse_unknown`).

    Returns:
        An :class:`ImageTable`; ``raw_label`` keeps the layout's label next to the contract columns.

    Example:
        >>> data = load_datasets(["kermany:../shared/data/kermany"], task="kermany-binary")  # doctest: +SKIP
        >>> data.class_names  # doctest: +SKIP
        ['normal', 'pneumonia']
    """
    if not specs:
        raise DatasetError("no dataset given; pass at least one LAYOUT:PATH")
    frame = pd.concat([load_dataset(spec) for spec in specs], ignore_index=True)
    twice = frame["path"][frame["path"].duplicated()]
    if not twice.empty:
        raise DatasetError(f"{twice.iloc[0]}: listed twice ({len(twice)} duplicate paths across {specs})")
    mapping, chosen = _mapping(task, label_map)
    frame = frame.rename(columns={"label_name": "raw_label"})
    mapped, unknown = _assign_labels(frame, mapping, classes)
    if mapped.empty:
        raise DatasetError(_nothing_left(frame["raw_label"], task, label_map, specs, classes))
    present = set(mapped["label_name"])
    if classes is not None:
        class_names = list(classes)
    elif chosen and chosen.classes and present <= set(chosen.classes):
        class_names = list(chosen.classes)
    else:
        class_names = sorted(present)
    mapped["label"] = (
        mapped["label_name"].map({name: i for i, name in enumerate(class_names)}).astype("int64")
    )
    mapped = mapped[[*COLUMNS, "raw_label"]].astype({c: str for c in COLUMNS if c != "label"})
    return ImageTable(class_names, mapped, unknown)


def unknown_text(unknown: dict[str, int]) -> str:
    """``covid: 2,872 images, lung_opacity: 12 images``."""
    from medxfer.io import counts_text

    return counts_text(unknown)


def refuse_unknown(table: ImageTable, specs: list[str], drop_unknown: bool = False) -> ImageTable:
    """The one policy for labels a model does not know: an error naming them, or (``drop_unknown``) the
    table as is, its ``unknown`` counts for the caller to report. ``table`` comes from
    :func:`load_datasets` with ``classes``.

    Example: ``refuse_unknown(load_datasets(specs, classes=["normal", "pneumonia"]), specs)``
    """
    if not table.unknown or drop_unknown:
        return table
    first = next(iter(table.unknown))
    raise DatasetError(
        f"{', '.join(specs)}: labels the model does not know: {unknown_text(table.unknown)} — the model "
        f"knows {', '.join(table.class_names)}; map them with --label-map {first}={table.class_names[-1]} "
        "(label_map= in Python) or drop them with --drop-unknown (drop_unknown=True)"
    )


def parse_label_map(items: list[str]) -> dict[str, str | None]:
    """``["covid=pneumonia", "lung_opacity=-"]`` -> ``{"covid": "pneumonia", "lung_opacity": None}``
    (``-`` drops the label); the ``--label-map RAW=CLASS`` option of the CLI."""
    mapping: dict[str, str | None] = {}
    for item in items:
        raw, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not raw or not name:
            raise DatasetError(f"--label-map {item!r}: expected RAW=CLASS (or RAW=- to drop the label)")
        mapping[raw] = None if name == "-" else name
    return mapping
