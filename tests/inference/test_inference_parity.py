"""`evaluate --tta` measures what `predict --tta` serves: both go through the one Predictor and its TTA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from inference_helpers import CLASSES, gray_image, make_run, write_png


@pytest.fixture
def parity_case(tmp_path: Path) -> tuple[Path, Path]:
    """A writable run folder and a labelled folder of 6 synthetic gray images (3 per class)."""
    run = make_run(tmp_path / "run", input_size=48)
    data = tmp_path / "data"
    for i in range(6):
        write_png(data / CLASSES[i % 2] / f"img{i}.png", gray_image(10 + i, size=60))
    return run, data


@pytest.mark.parametrize("tta", [False, True])
def test_evaluate_predicts_exactly_like_predict(parity_case: tuple[Path, Path], tta: bool) -> None:
    from typer.testing import CliRunner

    from medxfer.cli import app

    run, data = parity_case
    out = data.parent / "preds.csv"
    args = ["predict", str(run), str(data), "--out", str(out)] + (["--tta"] if tta else [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    served = pd.read_csv(out).set_index("path")

    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    evaluate_run(run, load_datasets([str(data)]), split=None, tta=tta, worst=0, n_boot=5)
    judged = pd.read_csv(run / "eval" / ("all-tta" if tta else "all") / "predictions.csv").set_index("path")
    assert len(judged) == len(served) == 6
    for c in CLASSES:
        np.testing.assert_allclose(
            judged.loc[served.index, f"p_{c}"].to_numpy(), served[f"prob_{c}"].to_numpy(), atol=2e-6
        )
