"""``model.tta: true``: a run that stores test-time augmentation uses it in every inference path by default
(Python API, ``predict``, ``evaluate``, ``serve``), and ``--no-tta`` / ``tta=False`` still turn it off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from inference_helpers import gray_image, write_png
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.inference.predictor import Predictor


def _tta_run(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run whose model.json says ``tta: true``."""
    run = tmp_path / "tta-run"
    shutil.copytree(tiny_run, run)
    info = json.loads((run / "model.json").read_text())
    assert info.get("tta") is False  # runs record the choice (default off)
    (run / "model.json").write_text(json.dumps({**info, "tta": True}))
    return run


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for label in ("normal", "pneumonia"):
        for i in range(3):
            write_png(folder / label / f"{label}{i}.png", gray_image(i + (10 if label == "pneumonia" else 0)))
    return folder


def test_recipe_key_reaches_model_json() -> None:
    from medxfer.config import ConfigError, load_config
    from medxfer.training.pieces import build_info

    cfg = load_config("demo", ["model.tta=true"])
    assert build_info(cfg, ["normal", "pneumonia"], "gray").tta is True
    assert build_info(load_config("demo"), ["normal", "pneumonia"], "gray").tta is False
    try:
        load_config("demo", ["model.tta=sometimes"])
    except ConfigError as exc:
        assert "model.tta" in str(exc)
    else:
        raise AssertionError("model.tta=sometimes was accepted")


def test_stored_tta_is_the_default_and_can_be_turned_off(tiny_run: Path, tmp_path: Path) -> None:
    run = _tta_run(tiny_run, tmp_path)
    images = [gray_image(i) for i in range(3)]
    plain, stored = Predictor(tiny_run), Predictor(run)
    with_tta = plain.predict_arrays(images, tta=True)
    np.testing.assert_allclose(stored.predict_arrays(images), with_tta, atol=1e-9)
    np.testing.assert_allclose(
        stored.predict_arrays(images, tta=False), plain.predict_arrays(images), atol=1e-9
    )
    assert not np.allclose(with_tta, plain.predict_arrays(images), atol=1e-6)  # TTA is visible

    from fastapi.testclient import TestClient

    from medxfer.serve.app import create_app

    png = write_png(tmp_path / "x.png", images[0]).read_bytes()
    answer = TestClient(create_app(run, token="")).post(
        "/api/predict", files={"file": ("x.png", png, "image/png")}
    )
    assert answer.status_code == 200, answer.text
    served = answer.json()["probabilities"]
    np.testing.assert_allclose([served["normal"], served["pneumonia"]], with_tta[0], atol=1e-6)


def test_cli_predict_and_evaluate_follow_the_run(tiny_run: Path, tmp_path: Path) -> None:
    run, folder = _tta_run(tiny_run, tmp_path), _folder(tmp_path)
    runner = CliRunner()
    for flags, out in (([], "stored.csv"), (["--tta"], "asked.csv"), (["--no-tta"], "off.csv")):
        target = run if flags != ["--tta"] else tiny_run
        res = runner.invoke(app, ["predict", str(target), str(folder), "--out", str(tmp_path / out), *flags])
        assert res.exit_code == 0, res.output
    stored, asked, off = (
        pd.read_csv(tmp_path / f).set_index("path") for f in ("stored.csv", "asked.csv", "off.csv")
    )
    np.testing.assert_allclose(stored["prob_pneumonia"], asked.loc[stored.index, "prob_pneumonia"], atol=2e-6)
    assert np.abs(stored["prob_pneumonia"] - off.loc[stored.index, "prob_pneumonia"]).max() > 1e-4

    base = ["evaluate", str(run), "--data", str(folder), "--n-boot", "10", "--worst", "0"]
    for flags in ([], ["--no-tta"]):
        res = runner.invoke(app, [*base, *flags])
        assert res.exit_code == 0, res.output
    tta_dirs = list((run / "eval").glob("external-*-tta"))
    plain_dirs = [d for d in (run / "eval").glob("external-*") if not d.name.endswith("-tta")]
    assert len(tta_dirs) == 1 and len(plain_dirs) == 1  # named by what was measured: nothing overwritten
    assert json.loads((tta_dirs[0] / "metrics.json").read_text())["tta"] is True
    assert json.loads((plain_dirs[0] / "metrics.json").read_text())["tta"] is False
    evaluated = pd.read_csv(tta_dirs[0] / "predictions.csv").set_index("path")
    np.testing.assert_allclose(
        evaluated["p_pneumonia"], stored.loc[evaluated.index, "prob_pneumonia"], atol=2e-6
    )
