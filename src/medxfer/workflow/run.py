"""The run object of the Python API: a trained run folder to evaluate, predict, explain and export.

:func:`medxfer.train` and :func:`medxfer.load_run` return it (``medxfer.Run``). Each method calls the
function the matching CLI command calls, so ``Run.evaluate`` is ``medxfer evaluate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.evaluate.results import Evaluation, Explanation
from medxfer.inference.notebook import RunNotebook

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.config import TrainConfig
    from medxfer.inference.export import ExportResult
    from medxfer.inference.predictor import Predictor
    from medxfer.runs import ModelInfo
    from medxfer.training.pieces import TrainResult

PathLike = str | os.PathLike[str]
Log = Callable[[str], Any]


class Run(RunNotebook):
    """A trained run folder: evaluate, predict, explain, export it; ``history``, ``show_batch()``.

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
        split: str | None = None,
        *,
        task: str | None = None,
        splits: PathLike | None = None,
        label_map: Mapping[str, str | None] | None = None,
        drop_unknown: bool = False,
        name: str | None = None,
        tta: bool | None = None,
        worst: int = 12,
        batch_size: int = 32,
        n_boot: int = 1000,
        seed: int = 0,
        leak_check: bool = True,
        stress: bool = False,
        stress_images: int = 300,
        progress: bool = True,
        threshold_rule: str | None = None,
        log: Log = print,
    ) -> Evaluation:
        """``medxfer evaluate``: score ``data`` (default: the run's own) into ``RUN/eval/<name>/``.

        Data in the run's ``splits.csv`` is internal, scored on ``split`` (None: test if any, else val;
        ``"all"``: every listed row). Other data is external: copies of training/validation images left
        out (``.excluded``, warning to ``log``), generalisation table in ``.generalisation``, further
        datasets in ``.others``. Unknown labels are an error unless mapped (``label_map``: RAW -> class,
        None drops) or ``drop_unknown``. ``threshold_rule`` (``youden`` | ``sens:0.95``) chooses the
        threshold on val first; ``stress``: shift stress test on ``stress_images`` images (0: all).

        Example::

            ev = run.evaluate(split="val", n_boot=200); ev.metrics["metrics"]["roc_auc"]
        """
        from medxfer.workflow.evaluating import evaluate

        done = evaluate(
            self.path,
            data,
            split=split,
            task=task,
            splits=splits,
            label_map=label_map,
            drop_unknown=drop_unknown,
            name=name,
            tta=tta,
            worst=worst,
            batch_size=batch_size,
            n_boot=n_boot,
            seed=seed,
            leak_check=leak_check,
            stress=stress,
            stress_images=stress_images,
            progress=progress,
            threshold_rule=threshold_rule,
            log=log,
        )
        self._predictor = None  # a chosen threshold rewrote model.json
        return done.evaluation()

    def predict(
        self, inputs: PathLike | np.ndarray | Sequence[Any], batch_size: int = 32, tta: bool | None = None
    ) -> pd.DataFrame | np.ndarray:
        """Predict files or decoded images.

        Files, folders, globs or a CSV with a ``path`` column -> a DataFrame (``path``, ``label``,
        ``prob_<class>``, ``threshold``, ``error``: unreadable files get an error, not an exception).
        A list of arrays (or one array) -> probabilities ``(N, C)``.
        """
        from medxfer.workflow.running import predict_inputs

        return predict_inputs(self.predictor, inputs, batch_size, tta)

    def explain(
        self, image: PathLike | np.ndarray, class_name: str | None = None, out: PathLike | None = None
    ) -> Explanation:
        """Grad-CAM for one image (file or decoded array) and ``class_name`` (default: the predicted class).

        ``out`` also writes the overlay PNG there.
        """
        from medxfer.workflow.running import explain_image

        return explain_image(self.predictor, image, class_name, out)

    def export(
        self,
        format: str = "onnx",
        out: PathLike | None = None,
        check_images: Sequence[np.ndarray] = (),
        *,
        force: bool = False,
        tolerance: float = 1e-4,
    ) -> ExportResult:
        """Export to ``onnx`` or ``torchscript`` (``RUN/model.onnx`` by default), checked against PyTorch.

        ``check_images``: decoded images for the self-check besides synthetic ones; ``tolerance``: the
        largest allowed difference of probabilities; ``force``: replace an existing ``out``.

        Example::

            run.export("onnx").max_abs_diff   # < 1e-4
        """
        from medxfer.inference.export import export_run

        return export_run(self.path, format, out, check_images, force=force, tolerance=tolerance)

    def summary(self, depth: int = 2) -> str:
        """The model's layer table (output shapes, parameters, trainable) as text."""
        from medxfer.training.summary import run_summary

        return run_summary(self.path, depth=depth)
