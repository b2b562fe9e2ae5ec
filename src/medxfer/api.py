"""The public Python API: what a notebook imports. Small and stable; the CLI commands call it.

Every function here wraps the one implementation of its step (``train_run``, ``evaluate_run``, the
``Predictor``, ``export_run``, ``run_tune``, ``run_check``, ``pretrain_run``): nothing is computed twice.

Example (a notebook)::

    import medxfer
    run = medxfer.train("kermany-binary", out="runs/kb", **{"train.batch_size": 16})
    ev = run.evaluate(split="test")          # metrics with CIs, report.html, figures
    ev.figures["roc"]                        # a matplotlib Figure (shown inline in Jupyter)
    run.predict(["a.jpeg", "b.jpeg"])        # pandas DataFrame: path, label, prob_<class>, ...
    run.explain("a.jpeg").figure             # Grad-CAM overlay as a matplotlib Figure
    run.export("onnx")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.evaluate.results import Evaluation, Explanation
from medxfer.pretraining.entry import pretrain  # the typed keywords live there; it imports nothing heavy

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.config import TrainConfig
    from medxfer.data.check import CheckReport
    from medxfer.data.datasets import ImageTable
    from medxfer.inference.export import ExportResult
    from medxfer.inference.predictor import Predictor
    from medxfer.runs import ModelInfo
    from medxfer.training.pieces import TrainResult

PathLike = str | os.PathLike[str]
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


def _override_strings(overrides: dict[str, Any]) -> list[str]:
    """``{"train.batch_size": 16, "model__backbone": "resnet50"}`` -> ``["train.batch_size=16", ...]``.

    Values are written as YAML (``load_config`` parses them back), so lists and ``None`` survive.
    """
    import yaml

    out = []
    for key, value in overrides.items():
        dump = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
        dump = dump.removesuffix("\n...").removesuffix("...").strip()
        out.append(f"{key.replace('__', '.')}={dump}")
    return out


def make_config(config: TrainConfig | PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A :class:`~medxfer.config.TrainConfig` from a recipe path (or defaults, or a config) plus overrides.

    Override keys are dotted config keys (``**{"train.batch_size": 16}``) or use ``__`` for the dots
    (``train__batch_size=16``); ``data=[...]``, ``task=...``, ``backbone=...``, ``weights=...`` are shortcuts.

    Example::

        cfg = make_config("kermany-binary", task="kermany-binary", train__epochs=1)
    """
    from dataclasses import asdict

    from medxfer.config import TrainConfig, from_dict, load_config

    shortcuts = {"data": "data.specs", "task": "data.task", "splits": "data.splits"}
    shortcuts |= {"backbone": "model.backbone", "weights": "model.weights"}
    strings = _override_strings({shortcuts.get(k, k): v for k, v in overrides.items()})
    if isinstance(config, TrainConfig):
        from medxfer.config import apply_override

        data = asdict(config)
        for s in strings:
            apply_override(data, s)
        return from_dict(data)
    return load_config(config, strings)


def check(
    *data: str,
    task: str | None = None,
    splits: PathLike | None = None,
    probe: bool = False,
    progress: bool = True,
    json_out: PathLike | None = None,
    **options: Any,
) -> CheckReport:
    """Check datasets for leakage, duplicates, source confounding (and shortcuts with ``probe``).

    Returns the :class:`~medxfer.data.check.CheckReport` (``.warnings``, ``.to_dict()``); ``options`` go to
    :func:`~medxfer.data.check.run_check` (``min_size``, ``mask_boxes``, ...). ``json_out`` also writes it
    as JSON (e.g. ``runs/NAME/check.json``, which ``evaluate`` repeats in its report).

    Example::

        report = medxfer.check("kermany:../shared/data/kermany", task="kermany-binary")
        report.warnings
    """
    import json

    from medxfer.data.check import run_check
    from medxfer.io import atomic_write_text

    table = load_table(list(data), task=task, splits=splits)
    report = run_check(table, probe=probe, progress=progress, **options)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2, default=_json_default))
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def load_table(
    data: Sequence[str],
    task: str | None = None,
    splits: PathLike | None = None,
    label_map: dict[str, str | None] | None = None,
) -> ImageTable:
    """Datasets (``LAYOUT:PATH`` specs) as one :class:`~medxfer.data.datasets.ImageTable`, splits applied.

    Example::

        table = load_table(["kermany:../shared/data/kermany"], task="kermany-binary").table
    """
    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import apply_splits

    table = load_datasets(list(data), task=task, label_map=label_map)
    return apply_splits(table, splits) if splits is not None else table


def train(
    config: TrainConfig | PathLike | None = None,
    out: PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> Run:
    """Train a classifier (staged transfer learning) into the run folder ``out``; returns its :class:`Run`.

    ``config``: a YAML recipe path, a :class:`~medxfer.config.TrainConfig`, or None (defaults).
    ``overrides``: see :func:`make_config`. ``resume=True`` continues the killed run in ``out``.

    Example::

        run = medxfer.train("kermany-binary", out="runs/kb", train__batch_size=16)
    """
    from medxfer.training.pieces import is_ddp_child
    from medxfer.training.runner import train_run

    if out is None:
        raise ValueError("train: give out='runs/NAME' (the run folder to create or resume)")
    cfg = None if resume else make_config(config, **overrides)
    result = train_run(cfg, out, resume=resume, overwrite=overwrite, progress=progress)
    run = Run(result.run_dir, _check=not is_ddp_child())  # DDP ranks > 0 return before model.json exists
    run.train_result = result
    return run


def load_run(path: PathLike) -> Run:
    """Open a run folder written by ``train`` (``model.json`` + weights).

    Example::

        run = medxfer.load_run("runs/kb"); run.class_names
    """
    return Run(path)


def ensemble(runs: Sequence[PathLike], out: PathLike, *, log: Any = print, **options: Any) -> Run:
    """Save 2-16 trained runs as one run ``out`` that predicts the mean of their probabilities; notes go
    to ``log``; ``options``: ``force``, ``allow_different_splits`` (``inference.ensemble.build_ensemble``).

    Example: ``medxfer.ensemble(["runs/kb-s1", "runs/kb-s2"], out="runs/kb-ens").evaluate()``
    """
    from medxfer.inference.ensemble import build_ensemble

    result = build_ensemble(runs, out, **options)
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
    log: Any = print,
    **options: Any,
) -> dict[str, Any]:
    """Run (or join) an Optuna study until it holds ``trials`` finished trials; returns its summary.

    ``storage`` is any SQLAlchemy URL (``sqlite:///runs/tune.db``, ``postgresql://user@host/db``) so
    several processes or machines can share a study. Further ``options`` are fields of
    :class:`medxfer.tuning.search.TuneOptions` (``timeout``, ``pruner``, ``seed``, ``overrides``, ``space``,
    ``threads``).

    Example::

        summary = medxfer.tune("kermany-binary", trials=50, fast=True)
        summary["best_value"]
    """
    from medxfer.tuning.search import TuneOptions, run_tune

    opts = TuneOptions(
        config=config, trials=trials, fast=fast, storage=storage, study=study, out=out, features=features
    )
    for key, value in options.items():
        if not hasattr(opts, key):
            raise TypeError(f"tune: unknown option {key!r}")
        setattr(opts, key, value)
    return run_tune(opts, log=log)


class Run:
    """A trained run folder: evaluate, predict, explain, export it.

    Example::

        run = medxfer.load_run("runs/kb")
        run.predict("images/")          # DataFrame
    """

    def __init__(self, path: PathLike, _check: bool = True) -> None:
        self.path = Path(path)
        self._predictor: Predictor | None = None
        self.train_result: TrainResult | None = None  # set by :func:`train` (time, speed, best metric)
        if _check and not any((self.path / n).is_file() for n in ("model.json", "classical.json")):
            raise FileNotFoundError(f"{self.path}: not a medxfer run folder (no model.json); train one first")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def info(self) -> ModelInfo:
        """The run's ``model.json`` (classes, backbone, preprocessing, threshold, validation metrics)."""
        return self.predictor.info

    @property
    def class_names(self) -> list[str]:
        """Class names in the model's output order (binary: ``class_names[1]`` is the positive class)."""
        return list(self.info.class_names)

    @property
    def config(self) -> TrainConfig | None:
        """The resolved recipe saved in the run (None for a run without ``config.yaml``)."""
        from medxfer.config import load_config

        path = self.path / "config.yaml"
        return load_config(path) if path.is_file() else None

    @property
    def predictor(self) -> Predictor:
        """The run's :class:`~medxfer.inference.predictor.Predictor` (torch engine), loaded once."""
        from medxfer.inference.predictor import Predictor

        if self._predictor is None:
            self._predictor = Predictor(self.path)
        return self._predictor

    def evaluate(
        self,
        data: str | Sequence[str] | None = None,
        split: str | None = "test",
        *,
        task: str | None = None,
        splits: PathLike | None = None,
        **options: Any,
    ) -> Evaluation:
        """Evaluate on ``split`` of ``data`` (default: the run's own datasets and ``splits.csv``).

        ``split=None`` uses every row. ``options`` go to ``evaluate_run`` (``name``, ``tta``, ``worst``,
        ``batch_size``, ``n_boot``, ``seed``). Writes ``RUN/eval/<name>/`` (report.html, metrics.json, PNGs).

        Example::

            ev = run.evaluate(split="val", n_boot=200); ev.metrics["metrics"]["roc_auc"]
        """
        from medxfer.inference.evaluation import evaluate_run

        table = self._table(data, task, splits, split)
        result = evaluate_run(self.path, table, split=split, **options)
        return Evaluation(result, Path(result["eval_dir"]), Path(result["report"]))

    def _table(
        self, data: str | Sequence[str] | None, task: str | None, splits: PathLike | None, split: str | None
    ) -> ImageTable:
        cfg = self.config
        specs = [data] if isinstance(data, str) else list(data or (cfg.data.specs if cfg else []))
        if not specs:
            raise ValueError(f"{self.path}: no datasets in the run's config; pass data='LAYOUT:PATH'")
        own = self.path / "splits.csv"
        if splits is None and split is not None and own.is_file():
            splits = own
        own_task = task is None and data is None and cfg is not None
        label_map = cfg.data.label_map if own_task and cfg else None
        return load_table(
            specs, task=task or (cfg.data.task if cfg else None), splits=splits, label_map=label_map
        )

    def predict(
        self, inputs: PathLike | np.ndarray | Sequence[Any], batch_size: int = 32, tta: bool = False
    ) -> pd.DataFrame | np.ndarray:
        """Predict files or decoded images.

        Files, folders, globs or a CSV with a ``path`` column -> a DataFrame (``path``, ``label``,
        ``prob_<class>``, ``threshold``, ``error``: unreadable files get an error, not an exception).
        A list of arrays (or one array) -> probabilities ``(N, C)``.
        """
        import pandas as pd

        from medxfer.inference.files import collect_inputs, predict_files

        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, str | os.PathLike):
            inputs = [inputs]
        items = list(inputs)
        if items and all(isinstance(x, np.ndarray) for x in items):
            return self.predictor.predict_arrays(items, batch_size=batch_size, tta=tta)
        table = predict_files(self.predictor, collect_inputs([str(x) for x in items]), batch_size, tta)
        df = pd.DataFrame(table.rows, columns=table.columns())
        for c in self.class_names:
            df[f"prob_{c}"] = pd.to_numeric(df[f"prob_{c}"])
        return df

    def explain(
        self, image: PathLike | np.ndarray, class_name: str | None = None, out: PathLike | None = None
    ) -> Explanation:
        """Grad-CAM for one image (file or decoded array) and ``class_name`` (default: the predicted class).

        ``out`` also writes the overlay PNG there.
        """
        from medxfer.data.images import read_image
        from medxfer.evaluate.explain import overlay, save_png

        img = image if isinstance(image, np.ndarray) else read_image(image)
        proba = self.predictor.predict_arrays([img])[0]
        label = class_name or self.predictor.labels(proba)[0]
        if label not in self.class_names:
            raise ValueError(f"unknown class {label!r}; valid: {', '.join(self.class_names)}")
        k = self.class_names.index(label)
        heat = self.predictor.cam(img, k)
        rgb = overlay(img, heat)
        if out is not None:
            save_png(str(out), rgb)
        return Explanation(label, float(proba[k]), heat, rgb, Path(out) if out is not None else None)

    def export(
        self,
        format: str = "onnx",
        out: PathLike | None = None,
        check_images: Sequence[np.ndarray] = (),
        **kw: Any,
    ) -> ExportResult:
        """Export to ``onnx`` or ``torchscript`` (``RUN/model.onnx`` by default), checked against PyTorch.

        Example::

            run.export("onnx").max_abs_diff   # < 1e-4
        """
        from medxfer.inference.export import export_run

        return export_run(self.path, format, out=out, check_images=check_images, **kw)

    def summary(self, depth: int = 2) -> str:
        """The model's layer table (output shapes, parameters, trainable) as text."""
        from medxfer.training.summary import run_summary

        return run_summary(self.path, depth=depth)
