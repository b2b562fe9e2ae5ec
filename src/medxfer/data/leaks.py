"""Leak-free data by default: ``check`` before training (cached by the data) and the duplicates policy.

``data.duplicates`` says what to do with the exact and near-duplicate groups ``check`` finds:

- ``group`` (default): every group counts as one patient, so a patient-grouped split keeps copies together.
- ``drop-cross-class``: images whose duplicates carry another label are dropped (listed in
  ``check.json`` under ``settings.dropped``); the remaining groups are grouped as above.
- ``keep``: nothing is done (copies may straddle splits; ``train`` then refuses unless leaks are allowed).

The check of a dataset is cached under ``$MEDXFER_CACHE/check`` keyed by every file's path, size and
modification time and by its label, source and patient: a second ``train`` on the same data reuses it.
Split-dependent findings (duplicates across splits, patients in two splits) are recomputed for the
final split by :func:`report_for_split`.

Example::

    report = cached_check(table)
    table, dropped = apply_duplicates_policy(table, report, "group")
    table = assign_splits(table)
    report = report_for_split(report, table)
    assert not split_leaks(report)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medxfer.data.check import CheckReport
    from medxfer.data.datasets import ImageTable

DUPLICATE_POLICIES = ("group", "drop-cross-class", "keep")


class LeakError(ValueError):
    """Duplicate images straddle the splits and leaks were not allowed."""


_KEY_COLUMNS = ("path", "label_name", "source", "patient_id", "view")


def data_key(table: ImageTable) -> str:
    """A hash of every row's file (path, size, mtime) and labels: equal keys mean the same check result."""
    from medxfer.data.scan import file_stamp

    h = hashlib.sha256(b"check-v1")
    df = table.table.sort_values("path")
    for row in df[list(_KEY_COLUMNS)].itertuples(index=False):
        h.update(("\x1f".join(map(str, row)) + "\x1f" + file_stamp(row[0]) + "\x1e").encode())
    return h.hexdigest()


def _cache_file(key: str) -> Path:
    from medxfer.data.cache import cache_root

    return cache_root() / "check" / f"{key}.json"


def cached_check(table: ImageTable, progress: bool = True) -> tuple[CheckReport, bool]:
    """``run_check`` on ``table`` (without its split), or the cached result for the same data.

    Returns ``(report, reused)``.
    """
    from medxfer.data.check import CheckReport, run_check
    from medxfer.io import atomic_write_text

    unsplit = table.with_table(table.table.assign(split=""))
    file = _cache_file(data_key(unsplit))
    if file.is_file():
        try:
            return CheckReport(**json.loads(file.read_text())), True
        except (OSError, ValueError, TypeError):
            pass  # an unreadable or older cache entry: check again
    report = run_check(unsplit, progress=progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(file, json.dumps(report.to_dict(), default=_plain))
    return report, False


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def apply_duplicates_policy(
    table: ImageTable, report: CheckReport, policy: str
) -> tuple[ImageTable, list[dict[str, str]]]:
    """Apply ``policy`` (see module docstring) to ``table`` with ``report``'s duplicate groups.

    Returns the new table and the dropped images (``path``, ``label_name``, ``reason``).
    """
    from medxfer.data.dedup import merge_patients

    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"data.duplicates={policy!r}; valid: {', '.join(DUPLICATE_POLICIES)}")
    if policy == "keep":
        return table, []
    groups = report.duplicates
    dropped: list[dict[str, str]] = []
    if policy == "drop-cross-class":
        df = table.table
        labels = dict(zip(df["path"].astype(str), df["label_name"], strict=True))
        for g in (g for g in groups if g["cross_class"]):
            others = ", ".join(g["classes"])
            for path in g["paths"]:
                if path in labels:
                    reason = f"{g['kind']} duplicate across classes {others}"
                    dropped.append({"path": path, "label_name": str(labels[path]), "reason": reason})
        gone = {d["path"] for d in dropped}
        table = table.with_table(df[~df["path"].astype(str).isin(gone)])
        groups = [g for g in groups if not g["cross_class"]]
    table, _ = merge_patients(table, [g["paths"] for g in groups])
    return table, dropped


def report_for_split(report: CheckReport, table: ImageTable, min_size: int | None = None) -> CheckReport:
    """``report`` (of the unsplit data) redone for ``table``'s rows and splits: counts, duplicate
    groups (members still present), patients in two splits, confounding, warnings. ``min_size`` (at
    most the check's own, e.g. the model's input size) narrows the list of small images."""
    from dataclasses import replace

    from medxfer.data.check import (
        _group_record,
        build_warnings,
        count_summary,
        find_patient_leaks,
        find_source_confounding,
    )

    df = table.table.reset_index(drop=True)
    index = {str(p): i for i, p in enumerate(df["path"])}
    groups = []
    for g in report.duplicates:
        rows = [index[p] for p in g["paths"] if p in index]
        if len(rows) > 1:
            groups.append(_group_record(df, rows, g["kind"]))
    groups.sort(key=lambda g: (not g["cross_class"], not g["cross_split"], not g["cross_source"]))
    out = replace(
        report,
        num_images=len(df),
        counts=count_summary(df),
        duplicates=groups,
        patient_leaks=find_patient_leaks(df),
        source_confounding=find_source_confounding(df),
        small_images=[s for s in report.small_images if s["path"] in index],
        non_frontal=[s for s in report.non_frontal if s["path"] in index],
        settings=dict(report.settings),
    )
    checked = int(out.settings.get("min_size", 224))
    if min_size is not None and min_size < checked:
        out.small_images = [s for s in out.small_images if min(s["width"], s["height"]) < min_size]
        out.settings["min_size"] = checked = min_size
    out.warnings = build_warnings(out, checked)
    return out


def split_leaks(report: CheckReport) -> list[dict[str, Any]]:
    """Duplicate groups whose images sit in more than one split."""
    return [g for g in report.duplicates if g["cross_split"]]


def patient_note(table: ImageTable) -> str | None:
    """A note when some images have no patient id (each then counts as its own patient), else None."""
    df = table.table
    unknown = int((df["patient_id"].astype(str) == df["path"].astype(str)).sum())
    if not unknown:
        return None
    return (
        f"note: {unknown} of {len(df)} images have no patient id, so each counts as its own patient; "
        "several images of one patient may then straddle splits (give ids in a CSV manifest: "
        "csv:FILE?patient_id=COLUMN)"
    )
