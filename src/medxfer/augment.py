"""Offline augmentation: grow a small class with augmented copies written to a new folder.

The copies keep their original's patient id (in ``manifest.csv``), so a patient-grouped split
never puts an image in one split and its augmented twin in another. Load the result together
with the original data as ``csv:OUT/manifest.csv``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from medxfer.data.transforms import get_augment
from medxfer.io import atomic_write_bytes, atomic_write_text


def augment_class(
    table, class_name: str, to: int, out_dir: Path, preset: str = "medium", seed: int = 0
) -> int:  # noqa: ANN001
    """Write ``to - count`` augmented copies of class ``class_name`` (train split, or all rows when
    there is no split) into ``out_dir/<class>/``; returns how many were written.

    Refuses an ``out_dir`` inside a source folder or one that already holds files.
    """
    from PIL import Image

    from medxfer.data.images import read_image
    from medxfer.data.transforms import augment_uint8

    if class_name not in table.class_names:
        raise ValueError(f"class {class_name!r} not in the data; classes: {', '.join(table.class_names)}")
    rows = table.table[table.table["label_name"] == class_name]
    if (rows["split"] == "train").any():
        rows = rows[rows["split"] == "train"]
    _check_out_dir(out_dir, rows["path"])
    need = to - len(rows)
    if need <= 0:
        return 0
    aug, rng = get_augment(preset), np.random.default_rng(seed)
    records = []
    for k in range(need):
        src = rows.iloc[k % len(rows)]
        img = augment_uint8(read_image(src["path"]), aug, rng)
        target = out_dir / class_name / f"{Path(src['path']).stem}_aug{k:05d}.png"
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        atomic_write_bytes(target, buf.getvalue())
        records.append(
            [
                target.relative_to(out_dir).as_posix(),
                class_name,
                src["patient_id"],
                "augmented",
                src["split"],
                src["path"],
            ]
        )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "label", "patient_id", "source", "split", "augmented_from"])
    writer.writerows(records)
    atomic_write_text(out_dir / "manifest.csv", buf.getvalue())
    return need


def _check_out_dir(out_dir: Path, sources) -> None:  # noqa: ANN001
    out = out_dir.resolve()
    for parent in {Path(p).resolve().parent for p in sources}:
        if out == parent or parent in out.parents or out in parent.parents:
            raise ValueError(f"--out {out_dir} overlaps the source folder {parent}; choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out_dir} already holds files; choose a new folder")
