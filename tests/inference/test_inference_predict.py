"""Predictor, input collection and ``medxfer predict`` end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import CLASSES, gray_image, make_run, write_png
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.inference.files import collect_inputs, predict_files
from medxfer.inference.predictor import Predictor, PredictorError, shift_image


@pytest.fixture(scope="module")
def predictor(tiny_run: Path) -> Predictor:
    return Predictor(tiny_run)


def test_predict_arrays_probabilities_and_batch_independence(predictor: Predictor) -> None:
    images = [gray_image(i) for i in range(5)] + [np.dstack([gray_image(9)] * 3)]
    probs = predictor.predict_arrays(images, batch_size=4)
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    one_by_one = np.concatenate([predictor.predict_arrays([img]) for img in images])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-6)


def test_labels_apply_the_binary_threshold(predictor: Predictor) -> None:
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.55, 0.45]])
    assert predictor.threshold == 0.5
    assert predictor.labels(probs) == ["normal", "pneumonia", "normal"]
    predictor.info.threshold = 0.3
    try:
        assert predictor.labels(probs) == ["pneumonia", "pneumonia", "pneumonia"]
    finally:
        predictor.info.threshold = 0.5


def test_multiclass_uses_argmax_and_no_threshold(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", input_size=32)
    p = Predictor(run)
    p.info.class_names = ["a", "b", "c"]  # labels() only needs names; argmax for > 2 classes
    assert p.threshold is None
    assert p.labels(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])) == ["c", "a"]


def test_shift_image_moves_pixels_and_replicates_edges() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert shift_image(arr, 1, 0).tolist() == [[0, 0, 1, 2], [4, 4, 5, 6], [8, 8, 9, 10]]
    assert shift_image(arr, 0, -1).tolist() == [[4, 5, 6, 7], [8, 9, 10, 11], [8, 9, 10, 11]]
    assert shift_image(np.dstack([arr] * 3), -2, 0).shape == (3, 4, 3)


def test_tta_is_the_mean_of_identity_and_four_shifts(predictor: Predictor) -> None:
    from medxfer.data.transforms import normalise, prepare

    img = gray_image(3)
    d = round(0.04 * predictor.info.input_size)
    base = prepare(img, predictor.info)
    views = [base] + [shift_image(base, dx, dy) for dx, dy in [(d, 0), (-d, 0), (0, d), (0, -d)]]
    import torch

    with torch.no_grad():
        expected = predictor.model.predict_proba(torch.stack([normalise(v, predictor.info) for v in views]))
    got = predictor.predict_arrays([img], tta=True)[0]
    np.testing.assert_allclose(got, expected.double().mean(0).numpy(), atol=1e-6)
    assert not np.allclose(got, predictor.predict_arrays([img])[0], atol=1e-9)


def test_cam_is_a_unit_heatmap_at_input_size(predictor: Predictor) -> None:
    heat = predictor.cam(gray_image(4), target_class=1)
    assert heat.shape == (64, 64)
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_onnx_engine_without_export_says_what_to_do(tiny_run: Path) -> None:
    with pytest.raises(PredictorError, match="medxfer export .* --format onnx"):
        Predictor(tiny_run, engine="onnx")
    with pytest.raises(PredictorError, match="choose one of"):
        Predictor(tiny_run, engine="tensorrt")


def test_collect_inputs_folders_globs_csv(tmp_path: Path) -> None:
    a = write_png(tmp_path / "d" / "a.png", gray_image(0))
    b = write_png(tmp_path / "d" / "sub" / "b.PNG", gray_image(1))
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    c = write_png(tmp_path / "c.png", gray_image(2))
    (tmp_path / "list.csv").write_text("path,label\nc.png,x\nd/a.png,y\n")
    assert collect_inputs([str(tmp_path / "d")]) == [str(a), str(b)]
    assert collect_inputs([str(tmp_path / "d" / "**" / "*.PNG")]) == [str(b)]
    assert collect_inputs([str(tmp_path / "list.csv"), str(a)]) == [str(c), str(a)]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        collect_inputs([str(tmp_path / "missing.png")])
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(ValueError, match="'path' column"):
        collect_inputs([str(tmp_path / "bad.csv")])


def test_predict_files_reports_unreadable_file_and_continues(predictor: Predictor, tmp_path: Path) -> None:
    good = [write_png(tmp_path / f"g{i}.png", gray_image(i)) for i in range(3)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    errors: list[str] = []
    table = predict_files(
        predictor, [str(good[0]), str(bad), str(good[1]), str(good[2])], 2, on_error=errors.append
    )
    assert [r["path"] for r in table.rows] == [str(good[0]), str(bad), str(good[1]), str(good[2])]
    assert table.n_failed == 1 and len(errors) == 1 and "broken.png" in errors[0]
    assert table.rows[1]["label"] == "" and table.rows[1]["prob_normal"] == ""
    expected = predictor.predict_arrays([gray_image(1)])[0]
    assert float(table.rows[2]["prob_pneumonia"]) == pytest.approx(expected[1], abs=1e-6)


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_cli_predict_folder_with_one_corrupt_file(
    tiny_run: Path, tmp_path: Path, kermany_paths: list[Path]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in kermany_paths[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "corrupt.jpeg").write_bytes(kermany_paths[0].read_bytes()[:300])
    out = tmp_path / "preds.csv"
    code, _, err = _run_cli(
        ["predict", str(tiny_run), str(folder), "--out", str(out), "--cam", str(tmp_path / "cam")]
    )
    assert code == 1
    assert "corrupt.jpeg" in err and "1 file(s) could not be read" in err
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "label", "prob_normal", "prob_pneumonia", "threshold", "error"]
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    assert len(ok) == 4 and len(failed) == 1 and failed[0]["path"].endswith("corrupt.jpeg")
    for r in ok:
        p1 = float(r["prob_pneumonia"])
        assert float(r["prob_normal"]) + p1 == pytest.approx(1.0, abs=2e-6)
        assert r["label"] == ("pneumonia" if p1 >= 0.5 else "normal") and r["threshold"] == "0.5"
    assert len(list((tmp_path / "cam").glob("*_cam.png"))) == 4

    code, _, err = _run_cli(["predict", str(tiny_run), str(folder), "--out", str(out)])
    assert code == 2 and "already exists" in err
    code, _, _ = _run_cli(
        ["predict", str(tiny_run), str(kermany_paths[0]), "--out", str(out), "--force", "--tta"]
    )
    assert code == 0 and len(list(csv.DictReader(out.open()))) == 1


def test_cli_predict_bad_inputs_exit_2(tiny_run: Path, tmp_path: Path) -> None:
    code, _, err = _run_cli(
        ["predict", str(tiny_run), str(tmp_path / "nope"), "--out", str(tmp_path / "o.csv")]
    )
    assert code == 2 and "nope" in err
    code, _, err = _run_cli(["predict", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o.csv")])
    assert code == 2
    assert not (tmp_path / "o.csv").exists()
    assert CLASSES == ["normal", "pneumonia"]
