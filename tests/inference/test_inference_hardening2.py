"""Issue 23: a DICOM bomb or a broken frame costs one row, never the batch or the machine's memory."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import gray_image, write_png

from medxfer.inference.files import predict_files
from medxfer.inference.predictor import Predictor

DATA_TESTS = Path(__file__).parents[1] / "data"
sys.path.insert(0, str(DATA_TESTS))  # image_corpus: the DICOM builders the decoder tests use

from image_corpus import deflate_bomb, dicom_bytes  # noqa: E402

# An unbounded inflate of the 2 GB bomb adds ~2,000 MB; a bounded one adds a few MB. Two limits: the growth
# over a first predict of the same folder without the bomb, and the whole process's peak (issue 23: under
# 2 GB). The peak is the process's own VmHWM: getrusage's ru_maxrss survives fork + exec on Linux, so in a
# child of a 2 GB pytest process it reads 2 GB before the child has done anything (CI: 2,068 MB).
GROWTH_LIMIT_MB = 400
PEAK_LIMIT_MB = 2048

_PREDICT_BOMB = """
import sys
sys.path.insert(0, {data_tests!r})
from pathlib import Path
from image_corpus import deflate_bomb
from typer.testing import CliRunner
from medxfer.cli import app

def peak_mb():  # this process's peak resident memory (VmHWM, kB), reset by exec unlike ru_maxrss
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) // 1024

folder = Path({folder!r})
warm = ["predict", {run!r}, str(folder), "--out", str(Path({out!r}).with_suffix(".warm.csv"))]
print("warm_exit", CliRunner().invoke(app, warm).exit_code)
baseline = peak_mb()
(folder / "bomb.dcm").write_bytes(deflate_bomb(1, 1, 2_000_000_000))
print("bomb_bytes", (folder / "bomb.dcm").stat().st_size)
result = CliRunner().invoke(app, ["predict", {run!r}, str(folder), "--out", {out!r}])
print("exit", result.exit_code)
print("baseline_mb", baseline)
print("growth_mb", peak_mb() - baseline)
print("peak_mb", peak_mb())
"""


def _extra_bytes_dicom() -> bytes:
    """A 1x1 header followed by a whole 112x112 frame of pixel bytes (pydicom 3: 12,544 frames)."""
    one = dicom_bytes(np.zeros((1, 1), np.uint8))
    full = dicom_bytes(gray_image(3, size=112)[:, :112])
    marker = b"\xe0\x7f\x10\x00"
    return one[: one.rindex(marker)] + full[full.rindex(marker) :]


def test_deflate_bomb_in_predict_is_one_error_row_without_inflating(tiny_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for i in range(3):
        write_png(folder / f"good{i}.png", gray_image(i))
    (folder / "frames.dcm").write_bytes(_extra_bytes_dicom())
    out = tmp_path / "preds.csv"
    script = _PREDICT_BOMB.format(
        data_tests=str(DATA_TESTS), folder=str(folder), run=str(tiny_run), out=str(out)
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 1_500_000 < int(report["bomb_bytes"]) < 2_500_000
    assert report["warm_exit"] == "1"  # frames.dcm fails already
    assert report["exit"] == "1"  # some files failed
    assert int(report["growth_mb"]) < GROWTH_LIMIT_MB, report
    assert int(report["peak_mb"]) < PEAK_LIMIT_MB, report
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert "decompression bomb" in rows["bomb.dcm"]["error"] and rows["bomb.dcm"]["label"] == ""
    assert "shape" in rows["frames.dcm"]["error"] and rows["frames.dcm"]["label"] == ""
    for i in range(3):
        assert rows[f"good{i}.png"]["error"] == "" and rows[f"good{i}.png"]["label"] in (
            "normal",
            "pneumonia",
        )


def test_an_image_that_fails_preparation_is_an_error_row(tiny_run: Path, tmp_path: Path) -> None:
    """Preparation (mask, channels, resize) runs inside the per-file error handling: the batch survives."""
    good = [str(write_png(tmp_path / f"g{i}.png", gray_image(i))) for i in range(2)]

    class OddDecoder(Predictor):
        def read(self, path: str) -> np.ndarray:  # type: ignore[override]
            img = super().read(path)
            return img[None] if path.endswith("g1.png") else img  # (1, H, W): outside the convention

    table = predict_files(OddDecoder(tiny_run), good, batch_size=8)
    assert table.rows[0]["error"] == "" and table.rows[0]["label"]
    assert table.rows[1]["error"].startswith(good[1]) and "cannot prepare" in table.rows[1]["error"]
    assert table.rows[1]["label"] == ""


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_probabilities_are_error_rows_not_labels(
    tiny_run: Path, tmp_path: Path, value: float
) -> None:
    paths = [str(write_png(tmp_path / f"g{i}.png", gray_image(i))) for i in range(3)]
    predictor = Predictor(tiny_run)
    real = predictor._run

    def poisoned(x: object) -> np.ndarray:
        out = real(x)
        out[1] = value
        return out

    predictor._run = poisoned  # type: ignore[method-assign]
    table = predict_files(predictor, paths, batch_size=8)
    assert [r["error"] == "" for r in table.rows] == [True, False, True]
    assert "non-finite probabilities" in table.rows[1]["error"] and table.rows[1]["label"] == ""
    assert table.rows[1]["prob_normal"] == table.rows[1]["prob_pneumonia"] == ""


def _copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


@pytest.mark.parametrize("value", [float("nan"), float("-inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(
    tiny_run: Path, tmp_path: Path, value: float
) -> None:
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from medxfer.cli import app
    from medxfer.runs import ModelInfoError

    run = _copy_run(tiny_run, tmp_path)
    state = load_file(str(run / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name].view(-1)[0] = value
    save_file(state, str(run / "model.safetensors"))
    with pytest.raises(ModelInfoError, match=f"tensor '{name}' holds NaN or infinite values"):
        Predictor(run)
    image = write_png(tmp_path / "x.png", gray_image(0))
    result = CliRunner().invoke(app, ["predict", str(run), str(image), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and name in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_serve_answers_422_not_a_label_for_non_finite_probabilities(tiny_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from medxfer.serve.app import create_app

    app = create_app(tiny_run, token="")
    predictor = app.state.predictor
    predictor._run = lambda x: np.full((len(x), 2), np.nan)  # type: ignore[method-assign]
    png = write_png(tmp_path / "x.png", gray_image(0)).read_bytes()
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/api/predict", files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 422 and "non-finite probabilities" in r.json()["detail"], r.text
    assert "422" in client.get("/openapi.json").json()["paths"]["/api/predict"]["post"]["responses"]


def test_model_json_error_quotes_at_most_200_characters(tiny_run: Path, tmp_path: Path) -> None:
    from medxfer.runs import ModelInfoError

    run = _copy_run(tiny_run, tmp_path)
    (run / "model.json").write_text('"' + "x" * 200_000 + '"')
    with pytest.raises(ModelInfoError) as info:
        Predictor(run)
    assert len(str(info.value)) < 500 and "200002 characters" in str(info.value)


def test_serve_answers_400_to_a_deflate_bomb_and_a_frame_mismatch(tiny_run: Path) -> None:
    import resource

    from fastapi.testclient import TestClient

    from medxfer.serve.app import create_app

    client = TestClient(create_app(tiny_run, token=""), raise_server_exceptions=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, data, reason in [
        ("bomb.dcm", deflate_bomb(1, 1, 2_000_000_000), "decompression bomb"),
        ("frames.dcm", _extra_bytes_dicom(), "shape"),
    ]:
        r = client.post("/api/predict", files={"file": (name, data, "application/dicom")})
        assert r.status_code == 400 and name in r.json()["detail"] and reason in r.json()["detail"], r.text
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, f"peak RSS grew {grown_mb:.0f} MB"  # before: about 4 GB for the 2 MB bomb
