"""Offline augmentation: grow a small class with augmented copies written to a new folder.

The copies keep their original's patient id (in ``manifest.csv``), so a patient-grouped split
never puts an image in one split and its augmented twin in another. Load the result together
with the original data as ``csv:OUT/manifest.csv``. Copies keep their original's file format
(a JPEG stays a JPEG: a class of PNG copies among JPEG originals is a shortcut) and rotations fill
the uncovered corners by reflection, not black.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from medxfer.data.transforms import get_augment
from medxfer.io import atomic_write_bytes, atomic_write_text

# file suffix -> (PIL format, save options); other sources (DICOM, ...) are written as PNG
FORMATS = {
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".png": ("PNG", {}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
}


class AugmentError(ValueError):
    """An augment request that cannot be done as asked (the message says why and what to give)."""


def augment_class(
    table, class_name: str, to: int, out_dir: Path, preset: str = "medium", seed: int = 0
) -> int:  # noqa: ANN001
    """Write ``to - count`` augmented copies of class ``class_name`` (train split, or all rows when
    there is no split) into ``out_dir/<class>/``; returns how many were written.

    Refuses an ``out_dir`` inside the data's folder or one that already holds files, and a ``to``
    not above the current count.
    """
    from medxfer.data.images import read_image
    from medxfer.data.transforms import augment_uint8

    if class_name not in table.class_names:
        raise AugmentError(f"class {class_name!r} not in the data; classes: {', '.join(table.class_names)}")
    rows = table.table[table.table["label_name"] == class_name]
    where = "all images"
    if (rows["split"] == "train").any():
        rows, where = rows[rows["split"] == "train"], "the train split"
    _check_out_dir(out_dir, table.table)
    need = to - len(rows)
    if need <= 0:
        raise AugmentError(
            f"--to {to}: class {class_name!r} already has {len(rows)} images in {where}; --to is the total "
            f"wanted (originals + copies), so give more than {len(rows)} (e.g. --to {2 * len(rows)})"
        )
    aug, rng = get_augment(preset), np.random.default_rng(seed)
    records = []
    for k in range(need):
        src = rows.iloc[k % len(rows)]
        img = augment_uint8(read_image(src["path"]), aug, rng, pad="reflect")
        suffix = Path(src["path"]).suffix.lower()
        suffix = suffix if suffix in FORMATS else ".png"
        target = out_dir / class_name / f"{Path(src['path']).stem}_aug{k:05d}{suffix}"
        atomic_write_bytes(target, encode(img, suffix))
        rel = target.relative_to(out_dir).as_posix()
        records.append([rel, class_name, src["patient_id"], "augmented", src["split"], src["path"]])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "label", "patient_id", "source", "split", "augmented_from"])
    writer.writerows(records)
    atomic_write_text(out_dir / "manifest.csv", buf.getvalue())
    return need


def encode(img: np.ndarray, suffix: str) -> bytes:
    """``img`` (uint8 gray or RGB) encoded in the format of ``suffix`` (PNG for unknown suffixes)."""
    from PIL import Image

    fmt, options = FORMATS.get(suffix, ("PNG", {}))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **options)
    return buf.getvalue()


def _check_out_dir(out_dir: Path, table_df) -> None:  # noqa: ANN001
    """Refuse an output inside (or above) any image folder or any source's root folder."""
    out = out_dir.resolve()
    folders = {Path(p).resolve().parent for p in table_df["path"]}
    for _, rows in table_df.groupby("source"):  # each dataset's root: the common folder of its images
        folders.add(Path(os.path.commonpath([str(Path(p).resolve().parent) for p in rows["path"]])))
    for parent in folders:
        if out == parent or parent in out.parents or out in parent.parents:
            raise AugmentError(
                f"--out {out_dir} overlaps the source folder {parent}: the copies would be read as part "
                "of the data (e.g. as a new class); choose a folder outside it"
            )
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out_dir} already holds files; choose a new folder")
