"""Layouts read from a table: your own CSV manifest and the metadata.csv COVID-19 collections.

``csv`` options (spec query, e.g. ``csv:labels.csv?path=file&label=class&split=fold``):
``path``, ``label``, ``patient_id``, ``split``, ``source``, ``view`` name the columns to use
(defaults: the first present of :data:`CSV_COLUMNS`); ``splits=0:train,1:val`` maps split
values that are not train/val/test. Paths are relative to the CSV's folder (absolute ones kept).
Rows with an empty label are skipped; a listed file that does not exist is an error.
HyperKvasir's ``labels.csv`` (``file,class,hyperkvasir_2fold_split_index``) loads as is
(its fold index is not a split unless you say so with ``split=...&splits=0:train,1:val``).

``ieee8023``, ``actualmed``, ``figure1`` options: ``views`` = ``frontal`` (PA, AP, AP Supine,
AP erect), ``frontal-or-unknown`` (also rows with a blank view) or ``all``; defaults: ``frontal``
for ieee8023 (its blank/``?`` views are unlabelled rows), ``frontal-or-unknown`` for the two
agchung collections (frontal radiographs, view often left blank). ``map=Finding:label,...``
overrides :data:`FINDING_MAP` entries. Metadata rows whose image file is missing are skipped
with a warning (copies of these collections often hold a subset); a file listed twice keeps its
first row.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pandas as pd

from medxfer.data.layouts import (
    FRONTAL_VIEWS,
    SPLIT_NAMES,
    DatasetError,
    raw_frame,
    register_layout,
    require_dir,
)

#: Finding (case-insensitive) -> raw label for the metadata.csv collections. Hierarchical findings
#: (``Pneumonia/Bacterial/Streptococcus``) are looked up from the most specific part; comma lists
#: (``COVID-19, ARDS``) by their first part that maps.
FINDING_MAP: dict[str, str | None] = {
    **dict.fromkeys(["covid-19", "covid19", "covid"], "covid"),
    **dict.fromkeys(["no finding", "normal"], "normal"),
    **dict.fromkeys(
        [
            "bacterial",
            "streptococcus",
            "klebsiella",
            "legionella",
            "mycoplasma",
            "mycoplasma bacterial pneumonia",
            "chlamydophila",
            "e.coli",
            "e. coli",
            "staphylococcus",
            "staphylococcus aureus",
            "mrsa",
            "nocardia",
        ],
        "bacterial",
    ),
    **dict.fromkeys(
        ["viral", "sars", "mers", "mers-cov", "varicella", "influenza", "herpes", "h1n1"],
        "viral",
    ),
}

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "path": ("path", "file", "filename", "file_name", "image", "image_path", "filepath", "imagename"),
    "label": ("label", "class", "label_name", "target", "finding"),
    "patient_id": ("patient_id", "patientid", "patient"),
    "split": ("split",),
    "source": ("source",),
    "view": ("view",),
}
VIEW_CHOICES = ("frontal", "frontal-or-unknown", "all")


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV as strings (blank cells stay ""), raising DatasetError on a bad file."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc})") from None


def _pairs(text: str, option: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.rpartition(":")
        if not sep or not key:
            raise DatasetError(f"option {option}={text!r}: expected KEY:VALUE[,KEY:VALUE...], got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _csv_columns(path: Path, frame: pd.DataFrame, options: dict[str, str]) -> dict[str, str | None]:
    chosen: dict[str, str | None] = {}
    for key, candidates in CSV_COLUMNS.items():
        if key in options:
            if options[key] not in frame.columns:
                raise DatasetError(
                    f"{path}: column {options[key]!r} (given as {key}=) not found; "
                    f"columns are: {', '.join(frame.columns)}"
                )
            chosen[key] = options[key]
        else:
            chosen[key] = next((c for c in frame.columns if c.lower() in candidates), None)
    for key in ("path", "label"):
        if chosen[key] is None:
            raise DatasetError(
                f"{path}: no {key} column (looked for {', '.join(CSV_COLUMNS[key])}); columns are: "
                f"{', '.join(frame.columns)}; name it with csv:{path}?{key}=COLUMN"
            )
    return chosen


def _csv_split(value: str, mapping: dict[str, str], path: Path) -> str:
    value = mapping.get(value.strip(), value).strip()
    if value == "" or value.lower() in SPLIT_NAMES:
        return SPLIT_NAMES.get(value.lower(), "")
    raise DatasetError(
        f"{path}: split value {value!r} is not train/val/test; map values with "
        f"csv:{path}?splits={value}:train,..."
    )


@register_layout("csv")
def csv_layout(path: Path, options: dict[str, str]) -> pd.DataFrame:
    """A CSV manifest: path,label[,patient_id,split,source,view] (see the module docstring)."""
    frame = read_table(path)
    cols = _csv_columns(path, frame, options)
    split_map = _pairs(options.get("splits", ""), "splits")
    base = os.path.dirname(os.path.abspath(path))
    default_source = Path(base).name
    rows, missing = [], []
    for rec in frame.to_dict("records"):
        label = rec[cols["label"]].strip()
        if not label:
            continue
        file_path = os.path.normpath(os.path.join(base, rec[cols["path"]].strip()))
        if not os.path.isfile(file_path):
            missing.append(file_path)
            continue
        patient = rec[cols["patient_id"]].strip() if cols["patient_id"] else ""
        source = rec[cols["source"]].strip() if cols["source"] else ""
        view = rec[cols["view"]].strip() if cols["view"] else ""
        split = _csv_split(rec[cols["split"]], split_map, path) if cols["split"] else ""
        rows.append((file_path, label, patient or file_path, source or default_source, view, split))
    if missing:
        raise DatasetError(f"{path}: {len(missing)} listed file(s) not found, e.g. {', '.join(missing[:3])}")
    return raw_frame(rows)


def map_finding(finding: str, mapping: dict[str, str | None]) -> str | None:
    """Raw label of a metadata finding (see FINDING_MAP), or None when it maps to nothing."""
    lowered = {k.lower(): v for k, v in mapping.items()}
    for part in finding.split(","):
        for piece in reversed(part.strip().split("/")):
            key = piece.strip().lower()
            if key in lowered:
                return lowered[key]
    return None


def _finding_map(options: dict[str, str]) -> dict[str, str | None]:
    mapping = dict(FINDING_MAP)
    for key, value in _pairs(options.get("map", ""), "map").items():
        mapping[key.lower()] = None if value in ("", "-") else value
    return mapping


def _view_ok(view: str, rule: str) -> bool:
    if rule not in VIEW_CHOICES:
        raise DatasetError(f"views={rule!r} is not valid; choose one of {', '.join(VIEW_CHOICES)}")
    if rule == "all":
        return True
    if not view.strip() or view.strip() == "?":
        return rule == "frontal-or-unknown"
    return view.strip().upper() in FRONTAL_VIEWS


def _metadata_layout(
    root: Path, options: dict[str, str], source: str, file_column: str, default_views: str
) -> pd.DataFrame:
    require_dir(root, source)
    meta_path = root / "metadata.csv"
    frame = read_table(meta_path)
    needed = ["patientid", "finding", file_column]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise DatasetError(
            f"{meta_path}: missing column(s) {', '.join(absent)} (layout {source}); "
            f"columns are: {', '.join(frame.columns)}"
        )
    mapping, rule = _finding_map(options), options.get("views", default_views)
    rows, missing, seen = [], [], set()
    for rec in frame.to_dict("records"):
        label, view = map_finding(rec["finding"], mapping), rec.get("view", "").strip()
        if label is None or not _view_ok(view, rule):
            continue
        folder = rec.get("folder", "").strip() or "images"
        path = os.path.normpath(os.path.join(os.path.abspath(root), folder, rec[file_column].strip()))
        if path in seen:
            continue
        if not os.path.isfile(path):
            missing.append(path)
            continue
        seen.add(path)
        patient = _patient(source, rec["patientid"].strip())
        rows.append((path, label, f"{source}:{patient}" if patient else path, source, view, ""))
    if missing:
        warnings.warn(
            f"{meta_path}: {len(missing)} listed image(s) not found and skipped, e.g. {missing[0]}",
            stacklevel=3,
        )
    return raw_frame(rows)


def _patient(source: str, patient: str) -> str:
    # Figure1 names several images of one patient COVID-00003a, COVID-00003b: group them
    return re.sub(r"(\d)[a-z]$", r"\1", patient) if source == "figure1" else patient


@register_layout("ieee8023")
def ieee8023_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """covid-chestxray-dataset (Cohen et al.): ``metadata.csv`` + ``images/``."""
    return _metadata_layout(root, options, "ieee8023", "filename", "frontal")


@register_layout("actualmed")
def actualmed_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """Actualmed COVID-19 chest X-rays (agchung): ``metadata.csv`` (column imagename) + ``images/``."""
    return _metadata_layout(root, options, "actualmed", "imagename", "frontal-or-unknown")


@register_layout("figure1")
def figure1_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """Figure1 COVID-19 chest X-rays (agchung): ``metadata.csv`` (column filename) + ``images/``."""
    return _metadata_layout(root, options, "figure1", "filename", "frontal-or-unknown")
