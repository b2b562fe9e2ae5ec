"""``medxfer tune``: an Optuna study over the training config.

Full mode trains the whole config per trial (``train_run`` into ``OUT/trials/<number>/``), pruning on
the per-epoch validation metric. Fast mode (``fast=True``) searches head-only settings on cached
frozen features: a small head per trial, hundreds of trials in minutes on a CPU. Both store the
study in ``storage`` (SQLite by default; any SQLAlchemy URL), so it resumes where it stopped and
several processes (or machines) can work on one study; the study ends with exactly ``trials``
finished trials. Outputs in ``out``: ``best_config.yaml`` (for ``medxfer train --config``),
``trials.csv``, ``summary.json``, ``history.png``, ``importance.png``, ``parallel.png``.

Example::

    summary = run_tune(TuneOptions(config="kermany-binary", trials=100, fast=True))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medxfer.config import TrainConfig
    from medxfer.features.extract import FeatureSet


@dataclass
class TuneOptions:
    """Everything ``medxfer tune`` takes (see the command's help)."""

    config: str | Path | None = None
    trials: int = 20
    timeout: float | None = None
    storage: str | None = None  # default medxfer.tuning.study.DEFAULT_STORAGE
    study: str | None = None  # default "<config name>-<full|fast>"
    space: str | Path | None = None  # default: the shipped tune_space.yaml
    fast: bool = False
    features: str | Path | None = None  # fast mode: a features .npz (else made from the config)
    out: str | Path | None = None  # default runs/tune/<study>
    pruner: str = "median"
    seed: int | None = 0
    overrides: list[str] = field(default_factory=list)
    threads: int = 1


def fast_features(
    cfg: TrainConfig, path: str | Path | None, log: Callable[[str], None] = print
) -> FeatureSet:
    """The features fast mode trains on: ``path`` or the config's data embedded by its backbone (cached)."""
    from medxfer.features.classical import ensure_splits
    from medxfer.features.extract import backbone_meta, extract_features, load_features

    if path is not None:
        fs = load_features(path)
    else:
        from medxfer.data.resolve import resolve_channels, resolve_table

        table = resolve_table(cfg.data)  # the one data path: data.duplicates keeps copies on one side
        channels = resolve_channels(cfg.data.channels, list(table.table["path"]))
        meta = backbone_meta(
            cfg.model.backbone, cfg.model.weights, cfg.model.input_size, channels, cfg.data.mask_boxes
        )
        fs = extract_features(table, meta)
        log(f"features: {len(fs)} x {fs.features.shape[1]} ({fs.meta['cached_rows']} from cache)")
    fs, note = ensure_splits(fs, val=cfg.data.val or 0.2, seed=cfg.data.seed)
    if note != "given":
        log(f"splits: {note}")
    return fs


def _prepare(opts: TuneOptions) -> tuple[TrainConfig, str, Path]:
    from medxfer.config import load_config
    from medxfer.tuning.study import PRUNERS

    if opts.trials < 1:
        raise ValueError(f"--trials {opts.trials}: give 1 or more")
    if opts.pruner not in PRUNERS:  # checked before any features are extracted or trials run
        raise ValueError(f"--pruner {opts.pruner!r}; valid: {', '.join(PRUNERS)}")
    if opts.features is not None and not opts.fast:
        raise ValueError("--features is for --fast mode only")
    cfg = load_config(opts.config, opts.overrides)
    name = opts.study or f"{cfg.name}-{'fast' if opts.fast else 'full'}"
    out = Path(opts.out) if opts.out else Path("runs") / "tune" / name
    return cfg, name, out


def run_tune(opts: TuneOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume, or join) a study until it holds ``opts.trials`` finished trials; write outputs.

    Returns the summary written to ``OUT/summary.json``.
    """
    from medxfer.tuning.objectives import FastObjective, FullObjective, direction
    from medxfer.tuning.space import load_space
    from medxfer.tuning.study import make_pruner, make_storage, open_study, run_trials

    cfg, name, out = _prepare(opts)
    space = load_space(opts.space, "fast" if opts.fast else "full")
    if opts.fast:
        objective: Any = FastObjective(fast_features(cfg, opts.features, log), cfg, space, opts.threads)
        highs = [int(d.high or 1) for d in space if d.key == "stages.0.epochs"]
        max_epochs = highs[0] if highs else cfg.stages[0].epochs
    else:
        objective = FullObjective(cfg, space, out)
        max_epochs = cfg.total_epochs
    storage = make_storage(opts.storage)
    study = open_study(
        storage, name, direction(cfg.train.monitor), make_pruner(opts.pruner, max_epochs), opts.seed
    )
    start = time.perf_counter()
    counts = run_trials(study, objective, opts.trials, opts.timeout, log)
    seconds = time.perf_counter() - start
    log(
        f"study {name}: this process ran {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed trials in {seconds:.1f} s"
    )
    from medxfer.tuning.outputs import write_outputs

    extra = {
        "mode": "fast" if opts.fast else "full",
        "requested_trials": opts.trials,
        "this_process": counts,
        "seconds": round(seconds, 2),
        "storage": opts.storage or "default",
    }
    return write_outputs(study, cfg, out, extra, log)
