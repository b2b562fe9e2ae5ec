"""Using a trained run from Python: predictions as a table, one Grad-CAM, a data check written as JSON.

:class:`medxfer.Run` methods and :func:`medxfer.check` call these; the CLI commands call the same
inference functions underneath (``predict_files``, ``Predictor.cam``, ``run_check``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.data.check import CheckReport
    from medxfer.evaluate.results import Explanation
    from medxfer.inference.predictor import Predictor

PathLike = str | os.PathLike[str]


def predict_inputs(
    predictor: Predictor, inputs: PathLike | np.ndarray | Sequence[Any], batch_size: int, tta: bool | None
) -> pd.DataFrame | np.ndarray:
    """Decoded arrays -> probabilities ``(N, C)``; files, folders, globs, CSVs -> the predictions table
    (``path``, ``label``, ``prob_<class>`` as numbers, ``threshold``, ``error``)."""
    import pandas as pd

    from medxfer.inference.files import collect_inputs, predict_files

    if isinstance(inputs, np.ndarray | str | os.PathLike):
        inputs = [inputs]
    items = list(inputs)
    if items and all(isinstance(x, np.ndarray) for x in items):
        return predictor.predict_arrays(items, batch_size=batch_size, tta=tta)
    table = predict_files(predictor, collect_inputs([str(x) for x in items]), batch_size, tta)
    df = pd.DataFrame(table.rows, columns=table.columns())
    for c in predictor.info.class_names:
        df[f"prob_{c}"] = pd.to_numeric(df[f"prob_{c}"])
    return df


def explain_image(
    predictor: Predictor, image: PathLike | np.ndarray, class_name: str | None, out: PathLike | None
) -> Explanation:
    """Grad-CAM of ``class_name`` (default: the predicted class) for one image; ``out``: also the PNG."""
    from medxfer.data.images import read_image
    from medxfer.evaluate.explain import overlay, save_png
    from medxfer.evaluate.results import Explanation

    names = list(predictor.info.class_names)
    img = image if isinstance(image, np.ndarray) else read_image(image)
    proba = predictor.predict_arrays([img])[0]
    label = class_name or predictor.labels(proba)[0]
    if label not in names:
        raise ValueError(f"unknown class {label!r}; valid: {', '.join(names)}")
    k = names.index(label)
    heat = predictor.cam(img, k)
    rgb = overlay(img, heat)
    if out is not None:
        save_png(str(out), rgb)
    return Explanation(label, float(proba[k]), heat, rgb, Path(out) if out is not None else None)


def write_check_json(report: CheckReport, path: PathLike) -> None:
    """The check report as JSON (e.g. ``runs/NAME/check.json``, repeated in evaluation reports)."""
    import json

    from medxfer.io import atomic_write_text, json_default

    atomic_write_text(path, json.dumps(report.to_dict(), indent=2, default=json_default))
