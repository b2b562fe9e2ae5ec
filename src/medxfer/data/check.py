"""``medxfer check``: read every image once and report what would make a model look better than it is.

Findings (never crashes): counts per class/source/split, unreadable files with the reason,
exact (SHA-256) and near (dHash) duplicates — loudly when a group crosses classes, splits or
sources — patients in more than one split, classes drawn mostly from one source (shortcut risk),
images smaller than the model input, non-frontal views, and optionally the shortcut probe.
Nothing is changed on disk here; ``--quarantine`` / ``--restore`` are :mod:`medxfer.data.quarantine`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.data.datasets import ImageTable
    from medxfer.data.scan import FileFacts

NEAR_RADIUS = 4  # dHash bits that may differ for a near duplicate (of 64)
SOURCE_DOMINANCE = 0.8  # a class this share from one source ...
OTHER_SHARE_MAX = 0.5  # ... that supplies less than this share of the other classes: shortcut risk
FRONTAL_PREFIXES = ("PA", "AP", "FRONTAL")


@dataclass
class CheckReport:
    """Everything ``check`` found; ``to_dict()`` is the JSON report."""

    num_images: int
    counts: dict[str, Any]
    unreadable: list[dict[str, str]]
    duplicates: list[dict[str, Any]]
    patient_leaks: list[dict[str, Any]]
    source_confounding: list[dict[str, Any]]
    small_images: list[dict[str, Any]]
    non_frontal: list[dict[str, str]]
    warnings: list[str] = field(default_factory=list)
    shortcut_probe: dict[str, Any] | None = None
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with keys counts, unreadable, duplicates, patient_leaks, warnings, ..."""
        return asdict(self)


def count_summary(df: pd.DataFrame) -> dict[str, Any]:
    """Images per class, per source, per split, and class x source / class x split tables."""
    import pandas as pd

    split = df["split"].replace("", "(none)")

    def nested(col: pd.Series) -> dict[str, dict[str, int]]:
        tab = pd.crosstab(df["label_name"], col)
        return {str(c): {str(k): int(v) for k, v in row.items() if v} for c, row in tab.iterrows()}

    return {
        "total": int(len(df)),
        "per_class": {str(k): int(v) for k, v in df["label_name"].value_counts().sort_index().items()},
        "per_source": {str(k): int(v) for k, v in df["source"].value_counts().sort_index().items()},
        "per_split": {str(k): int(v) for k, v in split.value_counts().sort_index().items()},
        "class_by_source": nested(df["source"]),
        "class_by_split": nested(split),
    }


def _group_record(df: pd.DataFrame, idx: list[int], kind: str) -> dict[str, Any]:
    rows = df.iloc[idx]
    classes = sorted(set(rows["label_name"]))
    splits = sorted(set(rows["split"]) - {""})
    sources = sorted(set(rows["source"]))
    return {
        "kind": kind,
        "paths": [str(p) for p in rows["path"]],
        "classes": classes,
        "splits": splits,
        "sources": sources,
        "cross_class": len(classes) > 1,
        "cross_split": len(splits) > 1,
        "cross_source": len(sources) > 1,
    }


def duplicate_index_groups(
    facts: Sequence[FileFacts], radius: int = NEAR_RADIUS
) -> tuple[list[list[int]], list[list[int]]]:
    """Indices of exact (same bytes) and near (dHash within ``radius``, thumbnails alike) duplicate groups."""
    from medxfer.data.hashing import exact_groups, near_groups
    from medxfer.data.scan import thumbs_array

    digests = [f.sha256 if f.ok else None for f in facts]
    hashes = [f.dhash if f.ok else None for f in facts]
    signatures = thumbs_array(facts).mean(axis=-1)  # 32x32 gray: verifies dHash candidates
    return exact_groups(digests), near_groups(hashes, digests, radius, signatures)


def find_duplicates(
    df: pd.DataFrame, facts: Sequence[FileFacts], radius: int = NEAR_RADIUS
) -> list[dict[str, Any]]:
    """Exact (same bytes) and near (dHash within ``radius`` bits) duplicate groups of readable files.

    Groups that cross classes, splits or sources come first.
    """
    exact, near = duplicate_index_groups(facts, radius)
    groups = [_group_record(df, g, "exact") for g in exact]
    groups += [_group_record(df, g, "near") for g in near]
    groups.sort(key=lambda g: (not g["cross_class"], not g["cross_split"], not g["cross_source"]))
    return groups


def find_patient_leaks(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Patients (real ids, not the path fallback) whose images sit in more than one split."""
    known = df[(df["split"] != "") & (df["patient_id"] != df["path"])]
    leaks = []
    for pid, rows in known.groupby("patient_id", sort=True):
        splits = sorted(set(rows["split"]))
        if len(splits) > 1:
            per_split = {s: int((rows["split"] == s).sum()) for s in splits}
            leaks.append({"patient_id": str(pid), "splits": splits, "images_per_split": per_split})
    return leaks


def find_source_confounding(df: pd.DataFrame, dominance: float = SOURCE_DOMINANCE) -> list[dict[str, Any]]:
    """Classes drawn ≥ ``dominance`` from one source that supplies < 50% of the other classes."""
    import pandas as pd

    if df["source"].nunique() < 2 or df["label_name"].nunique() < 2:
        return []
    tab = pd.crosstab(df["label_name"], df["source"])
    found = []
    for cls, row in tab.iterrows():
        source = str(row.idxmax())
        share = float(row.max() / row.sum())
        others = tab.drop(index=cls)
        other_share = float(others[source].sum() / max(others.to_numpy().sum(), 1))
        if share >= dominance and other_share < OTHER_SHARE_MAX:
            found.append(
                {
                    "class": str(cls),
                    "source": source,
                    "share": round(share, 4),
                    "other_classes_share": round(other_share, 4),
                }
            )
    return found


def find_small(df: pd.DataFrame, facts: Sequence[FileFacts], min_size: int) -> list[dict[str, Any]]:
    """Readable images whose shorter side is below ``min_size`` pixels."""
    return [
        {"path": f.path, "width": f.width, "height": f.height}
        for f in facts
        if f.ok and min(f.width, f.height) < min_size
    ]


def find_non_frontal(df: pd.DataFrame) -> list[dict[str, str]]:
    """Rows whose ``view`` is known and not frontal (PA/AP...), e.g. ``L`` or ``lateral``."""
    out = []
    for path, view in zip(df["path"], df["view"].fillna("").astype(str), strict=True):
        v = view.strip().upper()
        if v and not v.startswith(FRONTAL_PREFIXES):
            out.append({"path": str(path), "view": view})
    return out


def _duplicate_warnings(groups: list[dict[str, Any]]) -> list[str]:
    out = []
    for what, key in (("CLASSES", "cross_class"), ("SPLITS", "cross_split"), ("SOURCES", "cross_source")):
        crossing = [g for g in groups if g[key]]
        if crossing:
            example = crossing[0]
            out.append(
                f"DUPLICATES ACROSS {what}: {len(crossing)} group(s) of identical or near-identical images "
                f"span several {what.lower()} (e.g. {example['kind']}: {', '.join(example['paths'][:3])}). "
                "Remove copies before splitting, or test images leak into training."
            )
    plain = len(groups) - len(
        [g for g in groups if g["cross_class"] or g["cross_split"] or g["cross_source"]]
    )
    if plain:
        out.append(
            f"{plain} duplicate group(s) within one class/split/source (train's default data.duplicates: "
            "group keeps each in one split; so does `split --group-duplicates`)"
        )
    return out


def build_warnings(report: CheckReport, min_size: int) -> list[str]:
    """Human-readable warnings, most serious first."""
    out = []
    if report.unreadable:
        out.append(f"{len(report.unreadable)} unreadable file(s) (see 'unreadable'; --quarantine moves them)")
    out += _duplicate_warnings(report.duplicates)
    if report.patient_leaks:
        ids = ", ".join(leak["patient_id"] for leak in report.patient_leaks[:5])
        out.append(
            f"PATIENT LEAK: {len(report.patient_leaks)} patient(s) in more than one split (e.g. {ids})"
        )
    for c in report.source_confounding:
        out.append(
            f"SOURCE-CLASS CONFOUNDING (shortcut risk): class '{c['class']}' comes {c['share']:.0%} "
            f"from source '{c['source']}', which supplies only {c['other_classes_share']:.0%} of the "
            "other classes; a model can "
            "learn the source (hospital, age group, scanner, export) instead of the finding"
        )
    if report.small_images:
        out.append(f"{len(report.small_images)} image(s) smaller than {min_size} px on the shorter side")
    if report.non_frontal:
        views = sorted({r["view"] for r in report.non_frontal})
        out.append(f"{len(report.non_frontal)} non-frontal view(s) ({', '.join(views)}): filter them out")
    if report.shortcut_probe:
        out += report.shortcut_probe.get("warnings", [])
    return out


def run_check(
    table: ImageTable,
    *,
    min_size: int = 224,
    probe: bool = False,
    progress: bool = True,
    mask_boxes: Sequence[Sequence[float]] | None = None,
    workers: int = 2,
    near_radius: int = NEAR_RADIUS,
    seed: int = 0,
) -> CheckReport:
    """Read every image of ``table`` once and collect the findings (see module docstring).

    Args:
        table: the dataset (contract ``ImageTable``).
        min_size: images whose shorter side is below this are listed.
        probe: also run the shortcut probe on the thumbnails captured during the read.
        progress: show a progress bar.
        mask_boxes: relative ``[x0, y0, x1, y1]`` boxes blacked out before probing.
        workers: reader threads. near_radius: dHash bits for near duplicates. seed: probe seed.

    Example::

        report = run_check(load_datasets(["kermany:../shared/data/kermany"]), probe=True)
        print(report.warnings)
    """
    from medxfer.data.scan import scan_files

    start = time.perf_counter()
    df = table.table.reset_index(drop=True)
    facts = scan_files(list(df["path"]), workers=workers, progress=progress)
    report = CheckReport(
        num_images=len(df),
        counts=count_summary(df),
        unreadable=[{"path": f.path, "reason": f.reason} for f in facts if not f.ok],
        duplicates=find_duplicates(df, facts, near_radius),
        patient_leaks=find_patient_leaks(df),
        source_confounding=find_source_confounding(df),
        small_images=find_small(df, facts, min_size),
        non_frontal=find_non_frontal(df),
        settings={
            "min_size": min_size,
            "near_radius": near_radius,
            "mask_boxes": [list(b) for b in mask_boxes or []],
        },
    )
    if probe:
        from medxfer.data.probe import shortcut_probe

        result = shortcut_probe(
            table.with_table(df) if hasattr(table, "with_table") else table, facts, seed, mask_boxes
        )
        report.shortcut_probe = result.to_dict()
    report.warnings = build_warnings(report, min_size)
    report.seconds = round(time.perf_counter() - start, 2)
    return report
