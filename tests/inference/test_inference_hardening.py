"""Issue 11: bad files never cost a batch, bad model.json never loads, decode memory follows the model."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from inference_helpers import gray_image, write_png
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.images import pixel_cap
from medxfer.inference.files import predict_files
from medxfer.inference.predictor import Predictor
from medxfer.runs import ModelInfoError
from medxfer.serve.app import create_app

REGRESSIONS = Path(__file__).parents[1] / "data" / "fuzz_regressions"


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stderr


def test_malformed_dicoms_give_one_error_row_each(tiny_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bad = sorted(REGRESSIONS.glob("*.dcm"))
    assert len(bad) >= 5
    for p in bad:
        shutil.copy(p, folder / p.name)
    for i in range(3):
        write_png(folder / f"good{i}.png", gray_image(i))
    out = tmp_path / "preds.csv"
    code, err = _cli(["predict", str(tiny_run), str(folder), "--out", str(out), "--batch-size", "4"])
    assert code == 1, err
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert len(rows) == len(bad) + 3
    for p in bad:
        assert rows[p.name]["error"].startswith(str(folder / p.name)) and rows[p.name]["label"] == ""
    for i in range(3):
        assert rows[f"good{i}.png"]["error"] == "" and rows[f"good{i}.png"]["label"] in (
            "normal",
            "pneumonia",
        )


def test_serve_answers_400_to_malformed_dicoms(tiny_run: Path) -> None:
    client = TestClient(create_app(tiny_run, token=""), raise_server_exceptions=False)
    for p in sorted(REGRESSIONS.glob("*.dcm")):
        r = client.post("/api/predict", files={"file": (p.name, p.read_bytes(), "application/dicom")})
        assert r.status_code == 400, (p.name, r.status_code, r.text)
        assert p.name in r.json()["detail"]


def test_pixel_cap_follows_the_model_input(tiny_run: Path, tmp_path: Path) -> None:
    assert pixel_cap(224) == 4480**2 and pixel_cap(32) == 16_000_000 and pixel_cap(2048) == 100_000_000
    assert Predictor(tiny_run).max_pixels == pixel_cap(64)
    small = Predictor(tiny_run, max_pixels=80 * 80)
    big = write_png(tmp_path / "big.png", gray_image(0, size=100))
    table = predict_files(small, [str(big), str(write_png(tmp_path / "ok.png", gray_image(1, size=40)))])
    assert "more than max_pixels=6400" in table.rows[0]["error"] and table.rows[1]["error"] == ""


NETWORK = {"backbone": "custom_cnn", "weights": "none"}  # tiny_run's
BAD_INFO = [
    ({"mean": [0.5, 0.5]}, "'mean'"),
    ({"std": [0.0, 0.0, 0.0]}, "'std'"),
    ({"input_size": 0}, "'input_size'"),
    ({"input_size": 100000}, "'input_size'"),
    ({"mask_boxes": [[0.5, 0.0, 0.2, 1.0]]}, "'mask_boxes'"),
    ({"channels": "cmyk"}, "'channels'"),
    ({"threshold": 5}, "'threshold'"),
    ({"class_names": ["normal"]}, "'class_names'"),
    ({"network": {**NETWORK, "head": {"kind": "transformer"}}}, "'network.head.kind'"),
    ({"network": {**NETWORK, "backbone": "resnet5000"}}, "'network.backbone'"),
    ({"backbone": "resnet5000"}, "keep 'network' only"),  # an old-format field next to today's
    ({"output": "sigmoid"}, "do not match"),  # one logit vs the two in the weights
    ({"class_names": ["a", "b", "c"]}, "do not match"),
    ({"network": {**NETWORK, "head": {"kind": "mlp", "hidden": 8, "dropout": 0.0}}}, "do not match"),
]


def _broken_run(tiny_run: Path, tmp_path: Path, change: dict) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, **change}))
    return run


@pytest.mark.parametrize(("change", "field"), BAD_INFO)
def test_bad_model_json_is_refused_naming_file_and_field(
    tiny_run: Path, tmp_path: Path, change: dict, field: str
) -> None:
    run = _broken_run(tiny_run, tmp_path, change)
    with pytest.raises(ModelInfoError) as info:
        Predictor(run)
    assert str(run / "model.json") in str(info.value) and field in str(info.value)


def test_serve_predict_export_refuse_a_bad_run(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # a server that did start returns exit 0
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: None)
    run = _broken_run(tiny_run, tmp_path, {"std": [0, 0, 0]})
    image = write_png(tmp_path / "x.png", gray_image(0))
    for args in (
        ["serve", str(run), "--port", "1"],
        ["predict", str(run), str(image), "--out", str(tmp_path / "p.csv")],
        ["export", str(run), "--out", str(tmp_path / "m.onnx")],
    ):
        code, err = _cli(args)
        assert code == 2 and "model.json" in err and "'std'" in err, (args, code, err)
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "m.onnx").exists()


def test_valid_run_still_loads_with_every_field(tiny_run: Path) -> None:
    p = Predictor(tiny_run)
    assert (
        p.info.mean == (0.5, 0.5, 0.5) and p.info.network is not None and p.info.network.head.kind == "linear"
    )
    probs = p.predict_arrays([gray_image(3)])
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0)
