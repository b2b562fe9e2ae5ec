"""Predicting files for ``medxfer predict`` (and the Python API): inputs to paths, paths to a table.

:func:`collect_inputs` expands files, folders, globs and CSV manifests; :func:`predict_files` runs a
:class:`~medxfer.inference.predictor.Predictor` over them and records an error row per unreadable file
instead of aborting (optionally writing a Grad-CAM overlay per image).
"""

from __future__ import annotations

import csv
import glob
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medxfer.inference.predictor import Predictor


def collect_inputs(inputs: Iterable[str]) -> list[str]:
    """Expand files, folders (recursive, by image extension), globs and CSV manifests to file paths.

    A ``.csv`` input must have a ``path`` column; relative paths in it are relative to the CSV's folder.
    Order is kept; duplicates are dropped. Raises FileNotFoundError / ValueError naming the input.
    """
    from medxfer.data.images import IMAGE_EXTENSIONS

    seen: dict[str, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise FileNotFoundError(
                    f"{item}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            seen.update((str(f), None) for f in found)
        elif p.is_file() and p.suffix.lower() == ".csv":
            seen.update((path, None) for path in _csv_paths(p))
        elif p.is_file():
            seen[str(p)] = None
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            files = [m for m in matches if Path(m).is_file()]
            if not files:
                raise FileNotFoundError(f"{item}: pattern matches no files")
            seen.update((m, None) for m in files)
        else:
            raise FileNotFoundError(f"{item}: no such file, folder or pattern")
    return list(seen)


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{path}: a CSV input needs a 'path' column; columns are {reader.fieldnames}")
        rows = [row["path"] for row in reader if row.get("path")]
    return [str(p if Path(p).is_absolute() else path.parent / p) for p in rows]


@dataclass
class PredictionTable:
    """Rows of ``medxfer predict`` output (one per input file) and how many failed."""

    class_names: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.rows if r["error"])

    def columns(self) -> list[str]:
        return ["path", "label"] + [f"prob_{c}" for c in self.class_names] + ["threshold", "error"]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def predict_files(
    predictor: Predictor,
    paths: Sequence[str],
    batch_size: int = 32,
    tta: bool = False,
    cam_dir: str | os.PathLike[str] | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PredictionTable:
    """Predict every file; unreadable files get an ``error`` entry (and ``on_error(message)``), not an abort.

    ``progress(n)`` is called with the number of files done in each batch. With ``cam_dir`` a Grad-CAM
    overlay PNG per image is written there (``<stem>_cam.png``, numbered if stems repeat).
    """
    from medxfer.data.images import ImageError

    table = PredictionTable(predictor.class_names)
    threshold = "" if predictor.threshold is None else f"{predictor.threshold:.6g}"
    for start in range(0, len(paths), max(1, batch_size)):
        chunk = paths[start : start + batch_size]
        images: list[np.ndarray] = []
        rows: list[dict[str, Any]] = []
        for path in chunk:
            row: dict[str, Any] = {"path": path, "label": "", "threshold": threshold, "error": ""}
            row.update({f"prob_{c}": "" for c in predictor.class_names})
            try:
                images.append(predictor.read(path))
                rows.append(row)
            except ImageError as exc:  # the decoder contract: every bad file is an ImageError
                row["error"] = str(exc)
                if on_error:
                    on_error(row["error"])
            table.rows.append(row)
        if images:
            probs = predictor.predict_arrays(images, batch_size=batch_size, tta=tta)
            for row, p, label in zip(rows, probs, predictor.labels(probs), strict=True):
                row["label"] = label
                row.update({f"prob_{c}": f"{v:.6f}" for c, v in zip(predictor.class_names, p, strict=True)})
            if cam_dir is not None:
                _write_cams(predictor, rows, images, Path(cam_dir))
        if progress:
            progress(len(chunk))
    return table


def _write_cams(
    predictor: Predictor, rows: list[dict[str, Any]], images: list[np.ndarray], cam_dir: Path
) -> None:
    from medxfer.inference.predictor import overlay_png
    from medxfer.io import atomic_write_bytes

    cam_dir.mkdir(parents=True, exist_ok=True)
    for row, img in zip(rows, images, strict=True):
        target = predictor.class_names.index(row["label"])
        heat = predictor.cam(img, target)
        stem, n = Path(row["path"]).stem, 1
        out = cam_dir / f"{stem}_cam.png"
        while out.exists():
            n += 1
            out = cam_dir / f"{stem}_cam{n}.png"
        atomic_write_bytes(out, overlay_png(img, heat))
