"""Shortcut probe: can the label be predicted from what should not carry it?

Three kinds of probe, all with patient-grouped folds (``StratifiedGroupKFold``, 5 folds) and a
patient-permuted-label baseline:

* ``statistic`` — standardised logistic regression (balanced class weights) on image statistics,
  one probe per group: ``image size`` (width, height, aspect, pixel count) and ``file format``
  (extension, channels stored in the file). Warns when out-of-fold balanced accuracy ≥ chance +
  ``BAL_ACC_MARGIN`` (0.25) or macro one-vs-rest AUC ≥ ``AUC_MIN`` (0.75), **and** balanced
  accuracy beats the permuted run by ``PERM_MARGIN`` (0.10).
* ``pattern`` — for each region of a 32x32 thumbnail with the centre removed (the four 8x8
  corners, the four edge strips between them, the whole border ring): do images share a recurring
  *fixed* pattern there (a marker, a text plate, a blacked-out box), and does having it go with the
  label? Warns when Cramér's V ≥ ``PATTERN_V_MIN`` (0.30) and beats permuted labels by 0.10.
* ``region`` / ``info`` — logistic regression on the region's pixels and on intensity (mean, std):
  reported, never a warning, because anatomy that reaches the border (colonoscopy frames fill the
  image) carries the label legitimately; on the real colon copy every border strip predicts the
  class from mucosa colour alone, while only the lower-left corner holds a fixed pattern.

Classifier probes fit on at most ``MAX_FIT_IMAGES`` images (whole patients sampled with the seed);
pattern probes use every image.

Mask boxes (relative ``[x0, y0, x1, y1]``) are applied to the thumbnails first, rounded outwards so
that no pixel touched by a box survives: a masked region becomes constant and the probe goes quiet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.data.datasets import ImageTable

BAL_ACC_MARGIN = 0.25
AUC_MIN = 0.75
PERM_MARGIN = 0.10
PATTERN_V_MIN = 0.30
PATTERN_MIN_COUNT = 5
PATTERN_MIN_SHARE = 0.02
MAX_FIT_IMAGES = 3000  # classifier probes fit on a random patient sample of this many images (speed)
WARN_KINDS = {"statistic"}  # "region" (pixel) probes are information: anatomy may reach the border
N_FOLDS = 5
BORDER = 8  # thumbnail pixels (of 32) in the border ring: 25% of each side

# name -> (row slice, col slice) on the 32x32 thumbnail; the centre [8:24, 8:24] is never used
REGIONS: dict[str, tuple[slice, slice]] = {
    "top-left corner": (slice(0, 8), slice(0, 8)),
    "top-right corner": (slice(0, 8), slice(24, 32)),
    "bottom-left corner": (slice(24, 32), slice(0, 8)),
    "bottom-right corner": (slice(24, 32), slice(24, 32)),
    "top edge": (slice(0, 8), slice(8, 24)),
    "bottom edge": (slice(24, 32), slice(8, 24)),
    "left edge": (slice(8, 24), slice(0, 8)),
    "right edge": (slice(8, 24), slice(24, 32)),
}
STAT_GROUPS: dict[str, list[str]] = {
    "image size": ["width", "height", "aspect", "log_pixels"],
    "file format": ["ext", "channels"],
    "intensity": ["mean", "std"],  # information only: brightness is partly anatomy
}
INFO_STATS = {"intensity"}


@dataclass
class ProbeScore:
    """One probe's cross-validated result."""

    name: str
    kind: str  # "region" or "statistic"
    balanced_accuracy: float
    macro_auc: float
    chance: float
    permuted_balanced_accuracy: float | None = None
    warn: bool = False
    association: float | None = None  # pattern probes: Cramér's V between pattern and label
    permuted_association: float | None = None
    pattern_share: float | None = None  # pattern probes: share of images matching a recurring pattern


@dataclass
class ProbeResult:
    """All probes, plus the human-readable warnings for those that beat chance clearly."""

    scores: list[ProbeScore]
    warnings: list[str]
    num_images: int
    num_classes: int
    folds: int
    mask_boxes: list[list[float]] = field(default_factory=list)
    skipped: str = ""  # why the probe could not run (e.g. one class only)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``shortcut_probe`` key of the check report)."""
        return asdict(self)

    @property
    def flagged(self) -> list[str]:
        """Names of the probes that warned."""
        return [s.name for s in self.scores if s.warn]


def mask_thumbs(thumbs: np.ndarray, boxes: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Zero every thumbnail pixel touched by a relative box (rounded outwards); returns a copy."""
    out = thumbs.copy()
    if not boxes:
        return out
    h, w = out.shape[1:3]
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"mask box {list(box)} must be x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 (same for y)")
        r0, r1 = math.floor(y0 * h), math.ceil(y1 * h)
        c0, c1 = math.floor(x0 * w), math.ceil(x1 * w)
        out[:, r0:r1, c0:c1] = 0
    return out


def region_features(thumbs: np.ndarray, pool: int = 2) -> dict[str, np.ndarray]:
    """Per region, ``pool``-pixel-averaged RGB cells flattened: ``{name: (N, F) float32}`` + border ring."""
    n, side = thumbs.shape[0], thumbs.shape[1] // pool
    pooled = thumbs.astype(np.float32).reshape(n, side, pool, side, pool, 3).mean(axis=(2, 4))
    feats = {}
    for name, (rs, cs) in REGIONS.items():
        sub = pooled[:, rs.start // pool : rs.stop // pool, cs.start // pool : cs.stop // pool]
        feats[name] = sub.reshape(n, -1)
    ring = np.ones((side, side), dtype=bool)
    b = BORDER // pool
    ring[b : side - b, b : side - b] = False
    feats["border (centre removed)"] = pooled[:, ring].reshape(n, -1)
    return feats


def stat_features(stats: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feature matrices per statistic group from a frame with width, height, ext, channels, mean, std."""
    import pandas as pd

    w = stats["width"].to_numpy(float)
    h = stats["height"].to_numpy(float)
    frame = pd.DataFrame(
        {
            "width": w,
            "height": h,
            "aspect": w / np.maximum(h, 1),
            "log_pixels": np.log1p(w * h),
            "channels": stats["channels"].to_numpy(float),
            "mean": stats["mean"].to_numpy(float),
            "std": stats["std"].to_numpy(float),
        }
    )
    ext = pd.get_dummies(stats["ext"].astype(str), prefix="ext").to_numpy(float)
    out = {}
    for name, cols in STAT_GROUPS.items():
        parts = [frame[[c for c in cols if c != "ext"]].to_numpy(float)]
        if "ext" in cols:
            parts.append(ext)
        out[name] = np.hstack(parts)
    return out


def _folds(labels: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Patient-grouped, class-stratified folds (fewer than 5 when a class has few patients)."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = [len(np.unique(groups[labels == c])) for c in np.unique(labels)]
    k = min(N_FOLDS, min(per_class))
    if k < 2:
        return []
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels, groups))


def _oof_proba(x: np.ndarray, y: np.ndarray, folds, num_classes: int) -> np.ndarray:  # noqa: ANN001
    """Out-of-fold class probabilities of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    proba = np.full((len(y), num_classes), 1.0 / num_classes)
    for train, test in folds:
        classes = np.unique(y[train])
        if len(classes) < 2:
            continue
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=300, tol=1e-3, class_weight="balanced")
        )
        model.fit(x[train], y[train])
        proba[np.ix_(test, classes)] = model.predict_proba(x[test])
    return proba


def _scores(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """Balanced accuracy and AUC (binary: class 1; else macro one-vs-rest) of out-of-fold probabilities.

    Computed by :mod:`medxfer.evaluate.metrics`, the formulas every report uses.
    """
    from medxfer.evaluate import metrics as M

    cm = M.confusion_matrix(y, proba.argmax(axis=1), proba.shape[1])
    return M.balanced_accuracy(cm), M.roc_auc(y, proba)


def _is_clear(bal: float, auc: float, chance: float) -> bool:
    return bal >= chance + BAL_ACC_MARGIN or auc >= AUC_MIN


def run_probes(
    features: dict[str, tuple[str, np.ndarray]],
    labels: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    seed: int = 0,
) -> tuple[list[ProbeScore], int]:
    """Score each ``{name: (kind, X)}`` feature set with grouped CV; permuted baseline when it beats chance.

    Only kinds in ``WARN_KINDS`` can warn; the others are reported as information.
    Returns the scores and the number of folds used (0 = could not split).
    """
    keep = _sample_patients(groups, MAX_FIT_IMAGES, seed)
    labels, groups = labels[keep], groups[keep]
    features = {name: (kind, x[keep]) for name, (kind, x) in features.items()}
    folds = _folds(labels, groups, seed)
    if not folds:
        return [], 0
    chance = 1.0 / len(np.unique(labels))
    permuted = _permute_by_group(labels, groups, np.random.default_rng(seed))
    scores = []
    for name, (kind, x) in features.items():
        if x.shape[1] == 0 or np.all(x.std(axis=0) == 0):  # constant (e.g. masked): nothing to learn
            scores.append(ProbeScore(name, kind, round(chance, 4), 0.5, round(chance, 4)))
            continue
        bal, auc = _scores(labels, _oof_proba(x, labels, folds, num_classes))
        score = ProbeScore(name, kind, round(bal, 4), round(auc, 4), round(chance, 4))
        if kind in WARN_KINDS and _is_clear(bal, auc, chance):
            pbal, _ = _scores(permuted, _oof_proba(x, permuted, folds, num_classes))
            score.permuted_balanced_accuracy = round(pbal, 4)
            score.warn = bal >= pbal + PERM_MARGIN
        scores.append(score)
    return scores, len(folds)


def cramers_v(ids: np.ndarray, labels: np.ndarray) -> float:
    """Cramér's V (0 = independent, 1 = one determines the other) between two label vectors."""
    _, a = np.unique(ids, return_inverse=True)
    _, b = np.unique(labels, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    if min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / table.sum() / (min(table.shape) - 1)))


def pattern_ids(x: np.ndarray, offset: int) -> tuple[np.ndarray, float]:
    """Assign each image the id of the recurring fixed pattern its region matches (-1: none).

    A pattern is a coarse quantisation (32 grey levels per step, shifted by ``offset``) of the pooled
    region shared exactly by at least ``max(PATTERN_MIN_COUNT, PATTERN_MIN_SHARE * N)`` images.
    Returns the ids and the share of images that match some pattern.
    """
    q = np.floor((x + offset) / 32).astype(np.int16)
    _, inverse, counts = np.unique(q, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    common = counts >= max(PATTERN_MIN_COUNT, PATTERN_MIN_SHARE * len(x))
    ids = np.where(common[inverse], inverse, -1)
    return ids, float((ids >= 0).mean())


def pattern_probe(name: str, x: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int) -> ProbeScore:
    """Does membership in a recurring fixed pattern (marker, box, text plate) of a region go with the label?

    Anatomy reaching the border varies image to image and forms no recurring pattern; a burnt-in
    marker or a blacked-out box does. Warns when Cramér's V ≥ ``PATTERN_V_MIN`` and beats the
    patient-permuted labels by ``PERM_MARGIN``.
    """
    chance = 1.0 / len(np.unique(labels))
    best = ProbeScore(name, "pattern", round(chance, 4), 0.5, round(chance, 4), association=0.0)
    permuted = _permute_by_group(labels, groups, np.random.default_rng(seed))
    for offset in (0, 16):  # two grids so values near a quantisation step still match
        ids, share = pattern_ids(x, offset)
        v = cramers_v(ids, labels)
        if v <= (best.association or 0.0):
            continue
        best.association, best.pattern_share = round(v, 4), round(share, 4)
        best.permuted_association = round(cramers_v(ids, permuted), 4)
        best.warn = v >= PATTERN_V_MIN and v >= best.permuted_association + PERM_MARGIN
    return best


def _sample_patients(groups: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Indices of whole patients, in random order, until ``cap`` images (all when fewer)."""
    if len(groups) <= cap:
        return np.arange(len(groups))
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = np.bincount(inverse)[order]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), cap, side="right")))]
    return np.flatnonzero(np.isin(inverse, chosen))


def _permute_by_group(labels: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle labels between patients (each patient keeps one label) so grouping stays intact."""
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_labels = labels[first]
    return rng.permutation(group_labels)[inverse]


def _warning(score: ProbeScore, class_names: Sequence[str]) -> str:
    classes = ", ".join(class_names)
    if score.kind == "pattern":
        return (
            f"SHORTCUT RISK: a recurring fixed pattern in the image region '{score.name}' "
            f"(matched by {score.pattern_share:.0%} of images) goes with the label "
            f"(Cramér's V {score.association:.2f}, label-permuted {score.permuted_association:.2f}) over "
            f"classes {classes}. Look for a burnt-in marker, text plate or blacked-out box there and "
            "mask it in every image (--mask x0,y0,x1,y1)."
        )
    return (
        f"SHORTCUT RISK: the label is predictable from the image statistic '{score.name}' alone "
        f"(balanced accuracy {score.balanced_accuracy:.2f} vs chance {score.chance:.2f}, "
        f"label-permuted {score.permuted_balanced_accuracy:.2f}; macro AUC {score.macro_auc:.2f}) "
        f"over classes {classes}: classes probably come from different sources, devices or "
        "exports. Balance sources per class, or resize/convert all images the same way."
    )


def shortcut_probe(
    table: ImageTable,
    images: Sequence[Any] | None = None,
    seed: int = 0,
    mask_boxes: Sequence[Sequence[float]] | None = None,
    progress: bool = False,
) -> ProbeResult:
    """Probe ``table`` for label shortcuts in image statistics and border regions.

    Args:
        table: the dataset (contract ``ImageTable``); ``patient_id`` groups the folds.
        images: row-aligned :class:`medxfer.data.scan.FileFacts` from ``check``'s single read;
            ``None`` reads the files now.
        seed: fold and permutation seed (deterministic).
        mask_boxes: relative ``[x0, y0, x1, y1]`` boxes blacked out before probing.
        progress: show a progress bar when the files have to be read.

    Returns:
        a :class:`ProbeResult`; ``warnings`` name each region/statistic that beats chance clearly.

    Example::

        result = shortcut_probe(load_datasets(["colon"]), mask_boxes=[[0, 0.65, 0.3, 1]])
        print(result.flagged)  # [] once the corner marker is masked
    """
    import pandas as pd

    from medxfer.data.scan import scan_files, thumbs_array

    df = table.table
    facts = list(images) if images is not None else scan_files(list(df["path"]), progress=progress)
    if len(facts) != len(df):
        raise ValueError(f"shortcut_probe: {len(facts)} image facts for {len(df)} table rows")
    ok = np.array([f.ok for f in facts], dtype=bool)
    boxes = [list(map(float, b)) for b in (mask_boxes or [])]
    labels = df["label"].to_numpy(int)[ok]
    groups = df["patient_id"].astype(str).to_numpy()[ok]
    result = ProbeResult([], [], int(ok.sum()), len(np.unique(labels)), 0, boxes)
    if result.num_classes < 2:
        result.skipped = "fewer than two classes among the readable images"
        return result
    kept = [f for f, k in zip(facts, ok, strict=True) if k]
    stats = pd.DataFrame(
        [{c: getattr(f, c) for c in ("width", "height", "ext", "channels", "mean", "std")} for f in kept]
    )
    feats = {n: ("info" if n in INFO_STATS else "statistic", x) for n, x in stat_features(stats).items()}
    thumbs = mask_thumbs(thumbs_array(kept), boxes)
    # pixel probes on coarse 4x4-pixel cells (few features: fast); patterns on 2x2 cells
    feats.update({n: ("region", x) for n, x in region_features(thumbs, pool=4).items()})
    result.scores, result.folds = run_probes(feats, labels, groups, int(df["label"].max()) + 1, seed)
    if result.folds:
        regions = region_features(thumbs, pool=2).items()
        result.scores += [pattern_probe(n, x, labels, groups, seed) for n, x in regions]
    result.scores.sort(key=lambda s: (not s.warn, -s.balanced_accuracy))
    if not result.folds:
        result.skipped = "too few patients per class for grouped cross-validation"
    names = list(table.class_names)
    result.warnings = [_warning(s, names) for s in result.scores if s.warn]
    return result
