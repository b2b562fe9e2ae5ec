"""Shift stress test: the same metrics on the evaluation images under controlled acquisition shifts.

Each shift is a pure function ``(image uint8 (H, W) or (H, W, 3), severity 1..3, rng) -> image`` of the same
shape and dtype, applied to the *decoded* image before the model's own preprocessing (mask, channels,
resize), as a different scanner, exposure or export pipeline would. The pixel math lives in
:mod:`medxfer.data.shifts` (shared with training augmentation); this module fixes the amounts.
Pixel amounts (blur sigma) are given for a 224-pixel short side and scaled with the image, so a shift
means the same on a 224 px thumbnail and a 2000 px film.

| shift | severities 1 / 2 / 3 |
|---|---|
| ``exposure`` | gain x1.2 / x1.4 / x1.7, highlights clipped (over-exposure) |
| ``gamma`` | gamma 1.5 / 2.0 / 2.5 (darker mid-tones) |
| ``contrast`` | contrast x0.7 / x0.5 / x0.35 around the image mean |
| ``blur`` | Gaussian sigma 1 / 2 / 3 px (at 224 px) |
| ``noise`` | Gaussian noise, sd 5 / 10 / 20 grey levels |
| ``jpeg`` | JPEG quality 30 / 15 / 7 |
| ``zoom`` | centre crop keeping 90 / 80 / 70 % of each side, resized back |
| ``rotation`` | 5 / 10 / 15 degrees, corners filled black |
| ``lowres`` | down-sampled to 1/2, 1/3, 1/4 of each side, then back up |

Predictions go through :class:`medxfer.inference.predictor.Predictor` (the one inference path),
metrics through :mod:`medxfer.evaluate.metrics`; the summary, table, plot and files of a result are
:mod:`medxfer.evaluate.stress_report` (pure judgement, under every layer that reports it).
The **stress score** is the mean ROC AUC over all shifted sets (every shift at
every severity); the report also names the worst one.

27 shifted copies of every image are costly, so the test runs on a sample by default
(:data:`STRESS_IMAGES` images, ``evaluate --stress-images N``, 0 = all): whole patients drawn per class in
the classes' proportions (:func:`stress_sample`); the report states the sample size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.data import shifts as P
from medxfer.evaluate import metrics as M
from medxfer.evaluate.stress_report import SEVERITIES, STRESS_COLUMNS, stress_summary, write_stress

if TYPE_CHECKING:
    from medxfer.inference.predictor import Predictor

STRESS_IMAGES = 300  # default sample size of the stress test

ShiftFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _level(values: Sequence[float], severity: int) -> float:
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {list(SEVERITIES)}; got {severity!r}")
    return float(values[severity - 1])


EXPOSURE = (1.2, 1.4, 1.7)
GAMMA = (1.5, 2.0, 2.5)
CONTRAST = (0.7, 0.5, 0.35)
BLUR = (1.0, 2.0, 3.0)
NOISE = (5.0, 10.0, 20.0)
JPEG = (30, 15, 7)
ZOOM = (0.9, 0.8, 0.7)
ROTATION = (5.0, 10.0, 15.0)
LOWRES = (1 / 2, 1 / 3, 1 / 4)


def exposure(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Multiply intensities by a gain > 1 and clip at 255 (burnt-out highlights)."""
    return P.gain(img, _level(EXPOSURE, severity))


def gamma(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``255 * (x / 255) ** g``: end points kept, mid-tones darker."""
    return P.gamma(img, _level(GAMMA, severity))


def contrast(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``mean + f * (x - mean)`` with ``f < 1`` (a flatter film); the image mean is kept."""
    return P.contrast(img, _level(CONTRAST, severity))


def blur(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Gaussian blur, sigma in pixels at 224 px scaled to the image size."""
    return P.blur(img, _level(BLUR, severity))


def noise(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Additive Gaussian noise (sd in grey levels), clipped to 0..255; ``rng`` makes it reproducible."""
    return P.noise(img, _level(NOISE, severity), rng if rng is not None else np.random.default_rng(0))


def jpeg(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Encode as JPEG at a low quality and decode again (export pipelines, PACS screenshots)."""
    return P.jpeg(img, int(_level(JPEG, severity)))


def zoom(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Centre crop keeping a fraction of each side, resized back to the original size (tighter field)."""
    return P.zoom(img, _level(ZOOM, severity))


def rotation(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Rotate counter-clockwise about the centre (patient positioning), corners filled with 0."""
    return P.rotate(img, _level(ROTATION, severity))


def lowres(img: np.ndarray, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Down-sample each side by a factor (box filter), then back up (bilinear): lost detail, same size."""
    return P.lowres(img, _level(LOWRES, severity))


SHIFTS: dict[str, tuple[ShiftFn, Sequence[float], str]] = {
    "exposure": (exposure, EXPOSURE, "gain x{}"),
    "gamma": (gamma, GAMMA, "gamma {}"),
    "contrast": (contrast, CONTRAST, "contrast x{}"),
    "blur": (blur, BLUR, "sigma {} px"),
    "noise": (noise, NOISE, "sd {}"),
    "jpeg": (jpeg, JPEG, "quality {}"),
    "zoom": (zoom, ZOOM, "keep {}"),
    "rotation": (rotation, ROTATION, "{} deg"),
    "lowres": (lowres, LOWRES, "scale {:.2f}"),
}


def list_shifts() -> list[str]:
    """Names of the shifts, in report order."""
    return list(SHIFTS)


def apply_shift(
    img: np.ndarray, shift: str, severity: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Apply the named shift at ``severity`` (1..3) to one decoded image.

    >>> apply_shift(np.full((4, 4), 100, np.uint8), "exposure", 1)[0, 0]
    120
    """
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; choose from {list_shifts()}")
    return SHIFTS[shift][0](img, severity, rng)


def shift_parameter(shift: str, severity: int) -> str:
    """Human-readable amount of a shift, e.g. ``"gamma 2.0"``."""
    _, values, fmt = SHIFTS[shift]
    return fmt.format(_level(values, severity))


def _row(
    shift: str,
    severity: int,
    parameter: str,
    y: np.ndarray,
    proba: np.ndarray,
    names: list[str],
    threshold: float | None,
) -> dict[str, Any]:
    m = M.classification_metrics(y, proba, names, threshold)
    row: dict[str, Any] = {"shift": shift, "severity": severity, "parameter": parameter}
    for key in STRESS_COLUMNS[3:-1]:
        value = m.get(key)
        row[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return row


def stress_test(
    predictor: Predictor,
    images: Sequence[np.ndarray],
    y: np.ndarray,
    shifts: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    batch_size: int = 32,
    tta: bool | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of ``predictor`` on ``images`` (decoded, labels ``y`` as model class indices), clean and
    under every shift x severity. Returns ``{"rows": [...], "summary": stress_summary(rows)}``.

    The first row is the clean set (``shift="none"``); ``auc_drop`` = clean AUC - shifted AUC.
    Noise is seeded per image from ``seed``, so a rerun gives the same numbers.

    Example::

        p = Predictor("runs/kb"); result = stress_test(p, read_images(paths), y, shifts=["blur"])
    """
    shifts = list(shifts) if shifts is not None else list_shifts()
    for s in shifts:
        if s not in SHIFTS:
            raise ValueError(f"unknown shift {s!r}; choose from {list_shifts()}")
    names, threshold = predictor.class_names, predictor.threshold
    y = np.asarray(y, dtype=int)
    proba = predictor.predict_arrays(list(images), batch_size=batch_size, tta=tta)
    rows = [_row("none", 0, "clean", y, proba, names, threshold)]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(shifts) * len(severities), desc="stress", unit="set", disable=not progress)
    for k, shift in enumerate(shifts):
        for sev in severities:
            bar.set_postfix_str(f"{shift} {shift_parameter(shift, sev)}", refresh=False)
            bar.update()
            shifted = [
                apply_shift(img, shift, sev, np.random.default_rng([seed, k, sev, i]))
                for i, img in enumerate(images)
            ]
            proba = predictor.predict_arrays(shifted, batch_size=batch_size, tta=tta)
            rows.append(_row(shift, sev, shift_parameter(shift, sev), y, proba, names, threshold))
    bar.close()
    clean_auc = rows[0]["roc_auc"]
    for r in rows:
        drop = None if clean_auc is None or r["roc_auc"] is None else clean_auc - r["roc_auc"]
        r["auc_drop"] = None if drop is None else round(drop, 6)
    return {"rows": rows, "summary": stress_summary(rows)}


def stress_sample(y: np.ndarray, groups: Sequence[str], n: int, seed: int = 0) -> np.ndarray:
    """Indices of about ``n`` images (all when ``n`` is 0 or at least their number): whole patients,
    drawn at random per class (a patient's class: its first image's) until each class has its share.

    >>> stress_sample(np.array([0, 0, 0, 0, 1, 1]), ["a", "a", "b", "c", "d", "e"], 3).size
    3
    """
    y, groups = np.asarray(y), np.asarray(groups, dtype=str)
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    first = dict(zip(groups[::-1], y[::-1], strict=True))  # reversed: the first image's label wins
    picked: list[np.ndarray] = []
    for cls in np.unique(y):
        share = max(1, round(n * float(np.mean(y == cls))))
        patients = np.array(sorted(g for g, c in first.items() if c == cls))
        taken = 0
        for g in rng.permutation(patients):
            if taken >= share:
                break
            rows = np.flatnonzero(groups == g)
            picked.append(rows)
            taken += len(rows)
    return np.unique(np.concatenate(picked))


def run_stress(
    predictor: Predictor,
    paths: Sequence[str],
    y: np.ndarray,
    out: str | Path,
    batch_size: int = 32,
    tta: bool | None = None,
    seed: int = 0,
    sample: tuple[Sequence[str], int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Decode ``paths`` with ``predictor.read`` (its pixel cap), :func:`stress_test`, and write
    ``stress.csv``/``stress.json``/``stress.png`` into ``out``; returns the stress result.

    ``sample``: ``(patient ids, n)``: test :func:`stress_sample`'s ``n`` images only (0: all); the
    summary says how many (``n_images`` of ``n_total``, ``sample``)."""
    keep = np.arange(len(paths)) if sample is None else stress_sample(y, sample[0], sample[1], seed)
    images = [predictor.read(str(paths[i])) for i in keep]
    y = np.asarray(y)[keep]
    result = stress_test(predictor, images, y, batch_size=batch_size, tta=tta, seed=seed, progress=progress)
    sampled = len(keep) < len(paths)
    result["summary"].update(
        n_images=len(keep), n_total=len(paths), sample="patients per class" if sampled else "all images"
    )
    write_stress(out, result)
    return result
