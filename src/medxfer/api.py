"""The public Python API: what a notebook imports. Small and stable; the CLI commands call it.

Every function here wraps the one implementation of its step, the same one the CLI calls: the
workflow layer (:mod:`medxfer.workflow`: config policies, evaluation sets and leak exclusion), then
``train_run``, :class:`~medxfer.inference.predictor.Predictor`, ``export_run``, ``run_tune``, ``run_check``,
``pretrain_run``.

Example (a notebook)::

    import medxfer
    run = medxfer.train("kermany-binary", out="runs/kb", overrides={"train.batch_size": 16})
    ev = run.evaluate(split="test")          # metrics with CIs, report.html, figures
    ev = run.evaluate(data="folder:new")     # external data: copies of training images left out
    ev.figures["roc"]                        # a matplotlib Figure (shown inline in Jupyter)
    run.predict(["a.jpeg", "b.jpeg"])        # pandas DataFrame: path, label, prob_<class>, ...
    run.explain("a.jpeg").figure             # Grad-CAM overlay as a matplotlib Figure
    run.export("onnx")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medxfer.evaluate.results import Evaluation, Explanation
from medxfer.pretraining.entry import pretrain  # the typed keywords live there; it imports nothing heavy
from medxfer.workflow.run import Run

if TYPE_CHECKING:
    from medxfer.config import TrainConfig
    from medxfer.data.check import CheckReport
    from medxfer.data.datasets import ImageTable

PathLike = str | os.PathLike[str]
Log = Callable[[str], Any]
__all__ = [
    "Evaluation",
    "Explanation",
    "Run",
    "check",
    "ensemble",
    "load_run",
    "load_table",
    "make_config",
    "pretrain",
    "train",
    "tune",
]


def make_config(
    config: TrainConfig | PathLike | None = None,
    *,
    data: Sequence[str] | None = None,
    task: str | None = None,
    splits: PathLike | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    epochs: int | None = None,
    allow_leaks: bool = False,
    overrides: Mapping[str, object] | None = None,
    log: Log | None = print,
) -> TrainConfig:
    """A :class:`~medxfer.config.TrainConfig` from a recipe (name, path, a config, or None: defaults).

    ``overrides`` maps dotted config keys to values (``{"train.batch_size": 16, "stages.0.lr": 1e-3}``;
    whole sections too: ``{"stages": [...]}``); an unknown key is an error. The keywords are
    ``medxfer train``'s flags, with its policies: another ``backbone`` starts from its own default
    weights; ``weights="none"`` with the default stages trains every layer (the note goes to ``log``);
    ``epochs`` sets every stage's epochs.

    Example::

        cfg = make_config("kermany-binary", epochs=1, overrides={"train.batch_size": 16})
    """
    from medxfer.workflow.configuring import build_config

    return build_config(
        config,
        data=data,
        task=task,
        splits=splits,
        backbone=backbone,
        weights=weights,
        epochs=epochs,
        allow_leaks=allow_leaks,
        overrides=overrides,
        log=log,
    )


def check(
    *data: str,
    task: str | None = None,
    splits: PathLike | None = None,
    probe: bool = False,
    progress: bool = True,
    json_out: PathLike | None = None,
    min_size: int = 224,
    mask_boxes: Sequence[Sequence[float]] | None = None,
    workers: int = 2,
    near_radius: int = 4,
    seed: int = 0,
) -> CheckReport:
    """Check datasets for leakage, duplicates, source confounding (and shortcuts with ``probe``).

    Returns the :class:`~medxfer.data.check.CheckReport` (``.warnings``, ``.to_dict()``). ``min_size``:
    shorter sides below it are listed; ``mask_boxes``: relative boxes blacked out before probing;
    ``near_radius``: dHash bits for near duplicates (see :func:`~medxfer.data.check.run_check`).
    ``json_out`` also writes it as JSON (e.g. ``runs/NAME/check.json``, repeated by ``evaluate``).

    Example::

        report = medxfer.check("kermany:../shared/data/kermany", task="kermany-binary")
        report.warnings
    """
    from medxfer.data.check import run_check
    from medxfer.workflow.running import write_check_json

    table = load_table(list(data), task=task, splits=splits)
    report = run_check(
        table,
        min_size=min_size,
        probe=probe,
        progress=progress,
        mask_boxes=mask_boxes,
        workers=workers,
        near_radius=near_radius,
        seed=seed,
    )
    if json_out is not None:
        write_check_json(report, json_out)
    return report


def load_table(
    data: Sequence[str],
    task: str | None = None,
    splits: PathLike | None = None,
    label_map: dict[str, str | None] | None = None,
    classes: Sequence[str] | None = None,
) -> ImageTable:
    """Datasets (``LAYOUT:PATH``) as one ImageTable, splits applied; ``classes``: see ``load_datasets``.

    Example::

        table = load_table(["kermany:../shared/data/kermany"], task="kermany-binary").table
    """
    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import apply_splits

    table = load_datasets(list(data), task=task, label_map=label_map, classes=classes)
    return apply_splits(table, splits) if splits is not None else table


def train(
    config: TrainConfig | PathLike | None = None,
    out: PathLike | None = None,
    *,
    data: Sequence[str] | None = None,
    task: str | None = None,
    splits: PathLike | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    epochs: int | None = None,
    allow_leaks: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
    overrides: Mapping[str, object] | None = None,
    log: Log | None = print,
) -> Run:
    """Train a classifier (staged transfer learning) into the run folder ``out``; returns its :class:`Run`.

    ``config``: a recipe name or path, a :class:`~medxfer.config.TrainConfig` (used as given), or None
    (defaults). The keywords and ``overrides`` are those of :func:`make_config` (``medxfer train``'s
    flags and policies). ``resume=True`` continues the killed run in ``out``; ``verbose``: tips too.

    Example::

        run = medxfer.train("kermany-binary", out="runs/kb", overrides={"train.batch_size": 16})
    """
    from medxfer.config import TrainConfig
    from medxfer.training.pieces import is_ddp_child
    from medxfer.training.runner import train_run

    if out is None:
        raise ValueError("train: give out='runs/NAME' (the run folder to create or resume)")
    asked = (data, task, splits, backbone, weights, epochs)
    as_given = isinstance(config, TrainConfig) and not overrides and not allow_leaks
    cfg = None
    if not resume:
        cfg = config if as_given and all(x is None for x in asked) else None
        cfg = cfg or make_config(
            config,
            data=data,
            task=task,
            splits=splits,
            backbone=backbone,
            weights=weights,
            epochs=epochs,
            allow_leaks=allow_leaks,
            overrides=overrides,
            log=log,
        )
    result = train_run(cfg, out, resume=resume, overwrite=overwrite, progress=progress, verbose=verbose)
    run = Run(result.run_dir, _check=not is_ddp_child())  # DDP ranks > 0 return before model.json exists
    run.train_result = result
    return run


def load_run(path: PathLike) -> Run:
    """Open a run folder written by ``train`` (``model.json`` + weights).

    Example::

        run = medxfer.load_run("runs/kb"); run.class_names
    """
    return Run(path)


def ensemble(
    runs: Sequence[PathLike],
    out: PathLike,
    *,
    force: bool = False,
    allow_different_splits: bool = False,
    log: Log = print,
) -> Run:
    """Save 2-16 trained runs as one run ``out`` that predicts the mean of their probabilities.

    ``force``: replace the files of a run already in ``out``; ``allow_different_splits``: members trained
    on different splits (val/test keep only images no member trained on). Notes go to ``log``.

    Example: ``medxfer.ensemble(["runs/kb-s1", "runs/kb-s2"], out="runs/kb-ens").evaluate()``
    """
    from medxfer.inference.ensemble import build_ensemble

    result = build_ensemble(runs, out, force=force, allow_different_splits=allow_different_splits)
    for note in result.notes:
        log(note)
    return Run(result.path)


def tune(
    config: PathLike | None = None,
    trials: int = 20,
    *,
    fast: bool = False,
    storage: str | None = None,
    study: str | None = None,
    out: PathLike | None = None,
    features: PathLike | None = None,
    timeout: float | None = None,
    space: PathLike | None = None,
    pruner: str = "median",
    seed: int | None = 0,
    overrides: Mapping[str, object] | None = None,
    threads: int = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Run (or join) an Optuna study until it holds ``trials`` finished trials; returns its summary.

    ``storage`` is any SQLAlchemy URL (``sqlite:///runs/tune.db``, ``postgresql://user@host/db``) so
    several processes or machines can share a study. ``timeout``: seconds; ``space``: a search-space
    YAML; ``pruner``: median | hyperband | none; ``seed``: the sampler's; ``overrides``: config keys
    of the base config, as for :func:`train`; ``threads``: torch threads per fast trial.

    Example::

        summary = medxfer.tune("kermany-binary", trials=50, fast=True)
        summary["best_value"]
    """
    from medxfer.tuning.search import TuneOptions, run_tune
    from medxfer.workflow.configuring import override_strings

    opts = TuneOptions(
        config=config,
        trials=trials,
        timeout=timeout,
        storage=storage,
        study=study,
        space=space,
        fast=fast,
        features=features,
        out=out,
        pruner=pruner,
        seed=seed,
        overrides=override_strings(overrides or {}),
        threads=threads,
    )
    return run_tune(opts, log=log)
