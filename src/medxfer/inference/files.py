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

NON_FINITE_HINT = "the run's weights or this input are damaged (no label given)"


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
    tta: bool | None = None,
    cam_dir: str | os.PathLike[str] | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PredictionTable:
    """Predict every file; unreadable files get an ``error`` entry (and ``on_error(message)``), not an abort.

    ``progress(n)`` is called with the number of files done in each batch. With ``cam_dir`` a Grad-CAM
    overlay PNG per image is written there (``<stem>_cam.png``, numbered if stems repeat).
    """
    table = PredictionTable(predictor.class_names)
    threshold = "" if predictor.threshold is None else f"{predictor.threshold:.6g}"
    for start in range(0, len(paths), max(1, batch_size)):
        chunk = paths[start : start + batch_size]
        rows: list[dict[str, Any]] = []
        images: list[np.ndarray] = []
        prepared: list[np.ndarray] = []
        for path in chunk:
            row: dict[str, Any] = {"path": path, "label": "", "threshold": threshold, "error": ""}
            row.update({f"prob_{c}": "" for c in predictor.class_names})
            table.rows.append(row)
            try:
                img, ready = _read_prepared(predictor, path)
            except ValueError as exc:  # ImageError (the decoder contract) or a failed preparation
                _fail(row, str(exc), on_error)
                continue
            rows.append(row)
            if cam_dir is not None:  # full-size images are kept only for the overlays
                images.append(img)
            prepared.append(ready)
        if prepared:
            probs = predictor.predict_arrays(prepared, batch_size=batch_size, tta=tta, prepared=True)
            done = _fill_rows(predictor, rows, probs, on_error)
            if cam_dir is not None:
                kept = [(r, img) for r, img, ok in zip(rows, images, done, strict=True) if ok]
                _write_cams(predictor, [r for r, _ in kept], [img for _, img in kept], Path(cam_dir))
        if progress:
            progress(len(chunk))
    return table


def _read_prepared(predictor: Predictor, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The decoded image and its model input (uint8), or ValueError naming the file."""
    from medxfer.data.images import ImageError

    img = predictor.read(path)
    try:
        return img, predictor.prepare(img)
    except (ValueError, TypeError, IndexError) as exc:
        raise ImageError(
            path, f"cannot prepare this image for the model ({type(exc).__name__}: {exc})"
        ) from None


def _fail(row: dict[str, Any], message: str, on_error: Callable[[str], None] | None) -> None:
    row["error"] = message
    if on_error:
        on_error(message)


def _fill_rows(
    predictor: Predictor,
    rows: list[dict[str, Any]],
    probs: np.ndarray,
    on_error: Callable[[str], None] | None,
) -> list[bool]:
    """Labels and probabilities into ``rows``; a non-finite probability is an error row, never a label."""
    done = []
    for row, p in zip(rows, probs, strict=True):
        if not np.all(np.isfinite(p)):
            values = ", ".join(f"{v:.6g}" for v in p)
            _fail(
                row,
                f"{row['path']}: the model gave non-finite probabilities ({values}); {NON_FINITE_HINT}",
                on_error,
            )
            done.append(False)
            continue
        row["label"] = predictor.labels(p[None])[0]
        row.update({f"prob_{c}": f"{v:.6f}" for c, v in zip(predictor.class_names, p, strict=True)})
        done.append(True)
    return done


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
