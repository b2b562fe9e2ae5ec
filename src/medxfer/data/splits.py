"""Train/val/test splits: stratified by class, grouped by patient, deterministic for a seed.

Rules of :func:`assign_splits`:

- Rows already in ``val`` or ``test`` (given by the layout, e.g. a Kermany ``test/`` folder) stay.
  A split the data already has is not drawn again; ``val``/``test`` fractions only apply to splits
  the data lacks.
- The pool (rows with split ``""`` or ``"train"``) is divided by patient: all images of one patient
  land in one split. A pool patient who also has images in a given val/test split follows them
  there (test first), so no patient straddles two splits.
- Stratification: patients are visited in a seeded random order and each goes to the split that
  is least filled, relative to its share, in the classes of that patient's images (weighted by
  their counts). Per-class shares therefore match to within a few patients' images, also when a
  patient has images of several classes (Kermany: bacterial and viral).
- A class with fewer pool patients than splits to fill (train plus each drawn split) is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from medxfer.data.datasets import DatasetError, ImageTable

SPLITS_COLUMNS = ("path", "label_name", "patient_id", "source", "split")
VALID_SPLITS = ("train", "val", "test", "")


class SplitError(ValueError):
    """A split that cannot be made as asked (bad fractions, too few patients)."""


def assign_splits(table: ImageTable, val: float = 0.2, test: float = 0.0, seed: int = 0) -> ImageTable:
    """Assign ``split`` to every row: stratified by class, grouped by patient, given splits kept.

    Args:
        table: the dataset (``split`` may already hold train/val/test/"" values).
        val: fraction of the pool's images (per class) for validation, if the data has no val rows.
        test: the same for test, if the data has no test rows.
        seed: random seed; the same seed and table give the same splits.

    Returns:
        A new ImageTable whose rows all have split ``train``, ``val`` or ``test``.

    Raises:
        SplitError: fractions outside [0, 1) or summing to 1 or more; a class with too few patients.

    Example:
        >>> data = assign_splits(load_datasets(["kermany:data/kermany"]), val=0.2, seed=1)  # doctest: +SKIP
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise SplitError(f"val={val} and test={test} must each be in [0, 1) and sum to less than 1")
    frame = table.table.copy()
    given = set(frame["split"]) & {"val", "test"}
    fractions = {name: f for name, f in (("val", val), ("test", test)) if f > 0 and name not in given}
    fractions = {"train": 1.0 - sum(fractions.values()), **fractions}
    pool = frame["split"].isin(["", "train"])
    _follow_given(frame, pool)
    pool = frame["split"].isin(["", "train"])
    assignment = _assign_pool(frame[pool], fractions, table.class_names, seed)
    frame.loc[pool, "split"] = frame.loc[pool, "patient_id"].map(assignment)
    return table.with_table(frame)


def _follow_given(frame: pd.DataFrame, pool: pd.Series) -> None:
    """Move pool rows of patients who already have val/test rows into that split (in place)."""
    for split in ("val", "test"):  # test last, so it wins for a patient in both
        patients = set(frame.loc[frame["split"] == split, "patient_id"])
        frame.loc[pool & frame["patient_id"].isin(patients), "split"] = split


def _assign_pool(
    pool: pd.DataFrame, fractions: dict[str, float], class_names: list[str], seed: int
) -> dict[str, str]:
    """Map each pool patient to a split name (see the module docstring for the rule)."""
    if pool.empty:
        return {}
    per_patient = pd.crosstab(pool["patient_id"], pool["label"])  # patients sorted by id
    names = list(fractions)
    for label, column in per_patient.items():
        patients = int((column > 0).sum())
        if patients < len(names):
            raise SplitError(
                f"class {class_names[int(label)]!r} has only {patients} patient(s) to split, but "
                f"{', '.join(names)} need at least one each; lower --val/--test or add data"
            )
    counts = per_patient.to_numpy(dtype=np.float64)
    target = np.outer([fractions[n] for n in names], counts.sum(axis=0))
    filled = np.zeros_like(target)
    choices = np.empty(len(counts), dtype=np.int64)
    for row in np.random.default_rng(seed).permutation(len(counts)):
        need = counts[row]
        # how full each split already is for this patient's classes (weighted by their images)
        fill = (filled / target) @ need
        choice = int(np.argmin(fill))  # ties -> first: train, val, test
        filled[choice] += need
        choices[row] = choice
    return dict(zip(per_patient.index, (names[c] for c in choices), strict=True))


def save_splits(table: ImageTable, path: str | os.PathLike[str]) -> None:
    """Write ``splits.csv`` (columns path,label_name,patient_id,source,split) atomically."""
    from medxfer.io import atomic_write_text

    atomic_write_text(path, table.table[list(SPLITS_COLUMNS)].to_csv(index=False))


def read_splits(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The rows of a splits.csv with absolute ``path`` values.

    Runs written before paths were stored absolute hold paths relative to where they were trained:
    each is tried against the working directory first, then against the file's folder.
    """
    from medxfer.data.datasets import resolve_path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: splits file not found")
    try:
        saved = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable splits CSV ({exc})") from None
    if "path" in saved.columns:
        saved["path"] = [p if os.path.isabs(p) else str(resolve_path(p, path.parent)) for p in saved["path"]]
    return saved


def apply_splits(table: ImageTable, path: str | os.PathLike[str]) -> ImageTable:
    """Set ``split`` from a splits.csv (paths matched exactly); rows it does not list get ``""``.

    A ``patient_id`` column in the file (e.g. duplicate groups merged by ``--group-duplicates``) replaces
    the loader's id of the rows it lists, so evaluation resamples the same groups the split kept together.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: the file lacks path/split columns, has an unknown split value, or matches
            none of the table's paths.
    """
    saved = read_splits(path)
    absent = [c for c in ("path", "split") if c not in saved.columns]
    if absent:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(absent)}; columns: {', '.join(saved.columns)}"
        )
    bad = sorted(set(saved["split"]) - set(VALID_SPLITS))
    if bad:
        raise DatasetError(f"{path}: unknown split value(s) {bad}; valid: train, val, test")
    lookup = dict(zip(saved["path"], saved["split"], strict=True))
    frame = table.table.copy()
    keys = frame["path"].map(os.path.abspath)
    matched = keys.isin(lookup.keys())
    if len(frame) and not matched.any():
        raise DatasetError(
            f"{path}: none of its {len(saved)} paths matches the {len(frame)} images of the data "
            f"(e.g. {saved['path'].iloc[0] if len(saved) else '-'} vs {frame['path'].iloc[0]})"
        )
    frame["split"] = keys.map(lookup).fillna("").astype(str)
    if "patient_id" in saved.columns:
        patients = dict(zip(saved["path"], saved["patient_id"], strict=True))
        listed = keys.map(patients)
        frame["patient_id"] = listed.where(listed.fillna("") != "", frame["patient_id"]).astype(str)
    return table.with_table(frame)


def split_summary(table: ImageTable) -> pd.DataFrame:
    """Per split: images, patients, and per class the image count and share (percent of the split).

    Returns a frame indexed by split with columns ``images``, ``patients``, ``<class>`` and
    ``<class> %``.
    """
    frame = table.table
    split_key = frame["split"].replace("", "(none)")
    counts = pd.crosstab(split_key, frame["label_name"]).reindex(columns=table.class_names, fill_value=0)
    out = pd.DataFrame(index=counts.index)
    out["images"] = counts.sum(axis=1)
    out["patients"] = frame.groupby(split_key)["patient_id"].nunique()
    for name in table.class_names:
        out[name] = counts[name]
        out[f"{name} %"] = (100.0 * counts[name] / out["images"]).round(1)
    order = [s for s in ("train", "val", "test", "(none)") if s in out.index]
    return out.loc[order]
