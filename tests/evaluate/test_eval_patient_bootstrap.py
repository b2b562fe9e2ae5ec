"""``medxfer evaluate``'s confidence intervals resample patients, end to end (an escaped bug: by image).

Four patients with five images each: the CIs written to metrics.json must be those of a bootstrap over
the four patients (whole patients drawn), and differ from a bootstrap over the twenty images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medxfer.cli import app


def test_evaluate_cis_resample_whole_patients(tiny_folder: Path, tiny_run: Path) -> None:
    from medxfer.inference.evaluation import evaluate_predictions
    from medxfer.inference.predictor import Predictor

    files = sorted(tiny_folder.rglob("*.png"))
    rows = [
        f"{f.relative_to(tiny_folder)},{f.parent.name},{f.parent.name}-{i % 2}" for i, f in enumerate(files)
    ]
    (tiny_folder / "labels.csv").write_text("path,label,patient_id\n" + "\n".join(rows) + "\n")
    args = ["evaluate", str(tiny_run), "--data", f"csv:{tiny_folder / 'labels.csv'}", "--name", "pt"]
    res = CliRunner().invoke(app, [*args, "--n-boot", "200", "--worst", "0"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tiny_run / "eval" / "pt" / "metrics.json").read_text())
    assert saved["n_images"] == 20 and saved["n_patients"] == 4
    assert saved["bootstrap"]["unit"] == "patient" and "CI over patients" in res.output

    predictor = Predictor(tiny_run)
    paths = [str(tiny_folder / r.split(",")[0]) for r in rows]
    proba = predictor.predict_paths(paths, 32, False)
    names = list(predictor.info.class_names)
    y = np.array([names.index(r.split(",")[1]) for r in rows])
    patients = np.array([r.split(",")[2] for r in rows])
    threshold = float(predictor.info.threshold)
    by_patient = evaluate_predictions(y, proba, names, patients, threshold, 200, 0)["ci"]
    by_image = evaluate_predictions(y, proba, names, np.array(paths), threshold, 200, 0)["ci"]
    assert saved["ci"]["roc_auc"] == by_patient["roc_auc"]
    assert saved["ci"]["accuracy"] == by_patient["accuracy"]
    assert by_patient["roc_auc"] != by_image["roc_auc"]  # the test can tell the two apart
