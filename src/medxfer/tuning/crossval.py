"""Leave-source-out and patient-grouped K-fold validation: one model per fold, judged on the held-out fold.

``--by source``: each source (hospital, collection: the table's ``source`` column) is held out once and the
model is trained on the others. ``--by patient --folds K``: stratified K folds grouped by patient.
Near-duplicate images (``check``'s finder) are merged into one patient first, so a copy of a held-out
image in another source never trains its model (it is left out of that fold's training instead).

Each fold is trained by the one training path: a full fold is :func:`medxfer.training.runner.train_run` on a
splits file (held-out fold = ``test``, the rest split into train/val by patient as ``train`` would), so a
killed crossval resumes fold by fold. ``fast=True`` trains only the head, on cached frozen embeddings
(:mod:`medxfer.features` + the tuning fast objective): the same folds in minutes. Held-out predictions
are scored by :mod:`medxfer.evaluate.metrics` (at 0.5 / argmax), with patient-bootstrap CIs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medxfer.config import TrainConfig
    from medxfer.data.datasets import ImageTable
    from medxfer.features.extract import FeatureSet

BY = ("source", "patient")
EXCLUDED = ""  # split value of rows left out of a fold (duplicates of held-out images)


@dataclass
class CrossvalOptions:
    """What ``medxfer crossval`` runs (see module docstring)."""

    config: str | Path
    out: str | Path
    by: str = "source"
    folds: int = 5
    fast: bool = False
    dedup: bool = True
    overrides: list[str] = field(default_factory=list)
    n_boot: int = 200
    seed: int = 0
    threads: int = 1
    progress: bool = False  # a bar over the folds


def assign_folds(table: ImageTable, by: str, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Fold index per row and the fold names: the sources, or ``fold1..foldK`` grouped by patient.

    Raises ValueError naming what is wrong: an unknown ``by``, fewer than 2 sources, too few patients.
    """
    df = table.table
    if by not in BY:
        raise ValueError(f"--by {by!r}: choose one of {list(BY)}")
    if by == "source":
        names = sorted(df["source"].astype(str).unique())
        if len(names) < 2:
            raise ValueError(
                f"leave-source-out needs 2 or more sources; the data has {names} (use --by patient)"
            )
        index = {s: k for k, s in enumerate(names)}
        return df["source"].astype(str).map(index).to_numpy(dtype=int), names
    from sklearn.model_selection import StratifiedGroupKFold

    n_patients = df["patient_id"].nunique()
    if folds < 2 or folds > n_patients:
        raise ValueError(f"--folds {folds}: give 2..{n_patients} (the number of patients)")
    fold_of = np.zeros(len(df), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(df)), df["label"], df["patient_id"])):
        fold_of[test] = k
    return fold_of, [f"fold{k + 1}" for k in range(folds)]


def fold_splits(table: ImageTable, fold_of: np.ndarray, k: int, val: float, seed: int) -> ImageTable:
    """The table of fold ``k``: held-out rows ``test``; rows of held-out patients (duplicate groups) in
    other folds left out (split ``""``); the rest split into train/val grouped by patient."""
    from medxfer.data.splits import assign_splits

    df = table.table.reset_index(drop=True)
    held = np.asarray(fold_of) == k
    held_patients = set(df.loc[held, "patient_id"])
    left_out = ~held & df["patient_id"].isin(held_patients).to_numpy()
    pool = ~held & ~left_out
    split = np.where(held, "test", EXCLUDED).astype(object)
    rest = assign_splits(table.with_table(df[pool].assign(split="")), val=val, test=0.0, seed=seed)
    split[pool] = rest.table["split"].to_numpy()
    df = df.assign(split=split.astype(str))
    return table.with_table(df)


def load_table(cfg: TrainConfig, dedup: bool, log: Callable[[str], None]) -> ImageTable:
    """The config's data (the one data path, :func:`medxfer.data.resolve.load_table`); near-duplicates
    merged into one patient."""
    from medxfer.data.resolve import load_table as load_data

    table = load_data(cfg.data)
    table = table.with_table(table.table.reset_index(drop=True))
    if dedup:
        from medxfer.data.dedup import merge_duplicate_patients

        table, changed = merge_duplicate_patients(table, progress=False)
        log(f"duplicates: {changed} images joined another image's patient (kept in one fold)")
    return table


def _fast_proba(fs: FeatureSet, split: np.ndarray, cfg: TrainConfig, threads: int) -> np.ndarray:
    """Head of ``cfg`` trained on the ``train`` rows' embeddings; probabilities of the ``test`` rows."""
    import torch

    from medxfer.tuning.objectives import FastObjective

    # FastObjective scores its "val" rows each epoch; here those are the held-out rows, which only
    # report: the head of the last epoch is used, never the epoch that did best on them.
    cols = {**fs.columns, "split": np.where(split == "test", "val", split)}
    obj = FastObjective(replace(fs, columns=cols), cfg, [], threads)
    torch.manual_seed(cfg.train.seed)
    obj.train_head(cfg, lambda epoch, value: None)
    with torch.no_grad():
        logits = obj.head.eval()(torch.from_numpy(fs.features[split == "test"]))
    return torch.softmax(logits, dim=1).double().numpy()


def _full_proba(
    cfg: TrainConfig, fold_table: ImageTable, fold_dir: Path, log: Callable[[str], None]
) -> tuple[np.ndarray, float]:
    """Train (or resume, or reuse) the fold's run with :func:`train_run`; Predictor on the test rows."""
    from medxfer.data.splits import save_splits
    from medxfer.inference.predictor import Predictor
    from medxfer.training.runner import train_run

    summary = fold_dir / "train_summary.json"
    if summary.is_file() and (fold_dir / "model.json").is_file():
        log(f"{fold_dir.name}: trained already, reusing")
    elif (fold_dir / "checkpoints" / "last.ckpt").is_file():
        log(f"{fold_dir.name}: resuming")
        train_run(None, fold_dir, resume=True)
    else:
        fold_dir.mkdir(parents=True, exist_ok=True)
        splits = fold_dir.parent / "splits" / f"{fold_dir.name}.csv"
        splits.parent.mkdir(parents=True, exist_ok=True)
        listed = fold_table.with_table(fold_table.table[fold_table.table["split"] != EXCLUDED])
        save_splits(listed, splits)
        cfg_k = copy.deepcopy(cfg)
        cfg_k.name = f"{cfg.name}-{fold_dir.name}"
        # the fold's own split; copies of held-out images are left out of it, so none straddle
        cfg_k.data.splits, cfg_k.data.duplicates = str(splits), "keep"
        train_run(cfg_k, fold_dir)
    seconds = float(json.loads(summary.read_text()).get("seconds", 0.0))
    paths = fold_table.table.loc[fold_table.table["split"] == "test", "path"].astype(str).tolist()
    return Predictor(fold_dir).predict_paths(paths), seconds


def run_crossval(opts: CrossvalOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every fold of ``opts`` and write ``OUT/crossval.{md,csv,json}`` + ``OUT/predictions.csv``.

    Returns the summary (``folds``: one dict per fold, ``spread``: mean/sd/min per metric, ``pooled``).

    Example::

        run_crossval(CrossvalOptions("covid-vs-normal", "runs/cv", by="source", fast=True))
    """
    from tqdm.auto import tqdm

    from medxfer.config import load_config
    from medxfer.tuning.crossval_report import build_summary, write_outputs

    cfg = load_config(opts.config, opts.overrides)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(cfg, opts.dedup, log)
    fold_of, names = assign_folds(table, opts.by, opts.folds, opts.seed)
    fs = _features(cfg, table, log) if opts.fast else None
    oof = np.full((len(table), len(table.class_names)), np.nan)
    folds = []
    for k, name in enumerate(tqdm(names, desc="crossval", unit="fold", disable=not opts.progress)):
        val = 0.0 if opts.fast else (cfg.data.val or 0.2)  # a fast head selects no epoch: no val needed
        ft = fold_splits(table, fold_of, k, val, cfg.data.seed)
        row, proba = _run_fold(opts, cfg, ft, name, fs, out, log)
        oof[ft.table["split"].to_numpy() == "test"] = proba
        folds.append(row)
    summary = build_summary(opts, cfg, table, fold_of, oof, folds)
    write_outputs(out, summary, table, fold_of, names, oof)
    return summary


def _run_fold(
    opts: CrossvalOptions,
    cfg: TrainConfig,
    ft: ImageTable,
    name: str,
    fs: FeatureSet | None,
    out: Path,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], np.ndarray]:
    """Train and score one fold; returns its report row and the held-out probabilities."""
    from medxfer.tuning.crossval_report import fold_metrics

    df = ft.table
    split = _capped_split(ft, cfg)
    counts = {s: int((split == s).sum()) for s in ("train", "val", "test", EXCLUDED)}
    log(
        f"{name}: train {counts['train']}, val {counts['val']}, held out {counts['test']}, "
        f"left out (duplicates of held-out images) {counts[EXCLUDED]}"
    )
    start = time.perf_counter()
    if fs is not None:
        proba = _fast_proba(fs, split, cfg, opts.threads)
        seconds = time.perf_counter() - start
    else:
        proba, seconds = _full_proba(cfg, ft, out / f"fold-{name}", log)
    test = split == "test"
    row = fold_metrics(
        df["label"].to_numpy()[test],
        proba,
        df["patient_id"].astype(str).to_numpy()[test],
        list(ft.class_names),
        opts.n_boot,
        opts.seed,
    )
    per_class = df.loc[test, "label_name"].value_counts()
    row.update(
        {
            "fold": name,
            "n_images": int(test.sum()),
            "n_patients": int(df.loc[test, "patient_id"].nunique()),
            "per_class": {c: int(per_class.get(c, 0)) for c in ft.class_names},
            "n_train": counts["train"],
            "left_out": counts[EXCLUDED],
            "seconds": round(seconds, 1),
        }
    )
    auc = "n/a" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
    log(f"{name}: held-out ROC AUC {auc}, accuracy {row['accuracy']:.3f} ({row['seconds']} s)")
    return row, proba


def _capped_split(ft: ImageTable, cfg: TrainConfig) -> np.ndarray:
    """The fold's split column, train rows over ``data.limit_per_class`` marked ``unused`` (the cap
    ``train_run`` applies, :func:`medxfer.training.pieces.limit_train`; the held-out fold is never capped)."""
    from medxfer.training.pieces import limit_train

    split = ft.table["split"].to_numpy().copy()
    if cfg.data.limit_per_class:
        kept = ft.table.index.isin(limit_train(ft, cfg.data.limit_per_class, cfg.data.seed).index)
        split[(split == "train") & ~kept] = "unused"
    return split


def _features(cfg: TrainConfig, table: ImageTable, log: Callable[[str], None]) -> FeatureSet:
    """Frozen embeddings of every row by the config's backbone (the shared content-keyed feature cache)."""
    from medxfer.data.cache import detect_channels
    from medxfer.features.extract import backbone_meta, extract_features

    channels = cfg.data.channels
    if channels == "auto":
        channels = detect_channels(list(table.table["path"]))
    meta = backbone_meta(
        cfg.model.backbone, cfg.model.weights, cfg.model.input_size, channels, cfg.data.mask_boxes
    )
    fs = extract_features(table, meta)
    log(f"features: {len(fs)} x {fs.features.shape[1]} ({fs.meta['cached_rows']} from cache)")
    return fs
