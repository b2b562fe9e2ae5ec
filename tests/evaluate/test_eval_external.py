"""External evaluation on real images (issue 15 item 1): data the run never saw is scored with no workaround.

A tiny custom CNN is trained (seconds) on a few real Kermany X-rays and on a few colon frames; then
``medxfer evaluate RUN --data ...`` scores a Kermany-layout copy with ``test/NORMAL``, ``test/PNEUMONIA``
and a ``folder:`` of new colon frames. Copies of training images planted in the external data (the same
bytes under another name, and a re-encoded near copy) must be listed and left out of the score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medxfer.cli import app

cli = CliRunner()


def _copy(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(f, folder / f.name)) for f in files]


def _near_copy(src: Path, dst: Path) -> Path:
    """The same picture re-encoded (other bytes): what a re-published copy looks like."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("L").save(dst, quality=70)
    return dst


def _train(specs: list[str], out: Path, cache: Path, task: str | None = None) -> Path:
    from medxfer.config import from_dict
    from medxfer.training.runner import train_run

    cfg = from_dict(
        {
            "data": {"specs": specs, "task": task, "val": 0.3, "seed": 0},
            "model": {"backbone": "custom_cnn", "weights": "none", "input_size": 32},
            "train": {"batch_size": 16, "augment": "none", "threads": 1},
            "stages": [{"name": "all", "epochs": 1, "trainable": "all", "lr": 3e-3}],
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDXFER_CACHE", str(cache))
        return train_run(cfg, out, progress=False).run_dir


@pytest.fixture(scope="module")
def kermany_case(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run trained on 20+20 Kermany images, and a Kermany-layout copy of 8+8 other ones in test/."""
    root = tmp_path_factory.mktemp("kermany_ext")
    src = shared_data / "kermany" / "train"
    normal = sorted((src / "NORMAL").glob("*.jpeg"))
    pneu = sorted((src / "PNEUMONIA").glob("*.jpeg"))
    train_n = _copy(normal[:20], root / "own" / "NORMAL")
    train_p = _copy(pneu[:20], root / "own" / "PNEUMONIA")
    ext = root / "other_hospital"
    _copy(normal[100:108], ext / "test" / "NORMAL")
    _copy(pneu[300:308], ext / "test" / "PNEUMONIA")
    _copy(normal[200:204], ext / "train" / "NORMAL")  # a download's train/ part: not scored
    run = _train([f"kermany:{root / 'own'}"], root / "run", root / "cache", task="kermany-binary")
    return {"root": root, "run": run, "ext": ext, "train": train_n + train_p}


def _evaluate(*args: str) -> tuple[int, str]:
    res = cli.invoke(app, ["evaluate", *args, "--n-boot", "50", "--worst", "2"])
    return res.exit_code, res.output


def test_kermany_layout_copy_is_external_test_split(kermany_case: dict) -> None:
    run, ext = kermany_case["run"], kermany_case["ext"]
    code, out = _evaluate(str(run), "--data", f"kermany:{ext}")
    assert code == 0, out
    assert (
        "external (kermany:" in out
        and "the layout's test split): 16 images" in out
        and "16 images, 0 seen in training" in out
    )
    saved = json.loads((run / "eval" / "external-other_hospital" / "metrics.json").read_text())
    assert saved["n_images"] == 16 and saved["split"] == "external" and saved["set"]["n_leaks"] == 0
    assert not (run / "eval" / "external-other_hospital" / "leaks.csv").exists()
    html = (run / "eval" / "external-other_hospital" / "report.html").read_text()
    assert "16 images, 0 seen in training" in html and "href='../generalisation/report.html'" in html
    # the generalisation table: the run's val (evaluated for it) and the external set, with the drop
    gen = json.loads((run / "eval" / "generalisation" / "generalisation.json").read_text())
    assert [r["set"] for r in gen["rows"]] == ["val", "external-other_hospital"]
    assert gen["reference"] == "val" and gen["rows"][1]["roc_auc_drop"] is not None
    rules = [t["rule"] for t in gen["thresholds"] if t["set"] == "external-other_hospital"]
    assert rules[0] == "0.5" and rules[1].startswith("val-chosen") and rules[2].startswith("HINDSIGHT")
    assert "HINDSIGHT" in (run / "eval" / "generalisation" / "report.html").read_text()


def test_training_copies_in_external_data_are_left_out(kermany_case: dict, tmp_path: Path) -> None:
    run, ext, train = kermany_case["run"], kermany_case["ext"], kermany_case["train"]
    leaky = tmp_path / "leaky"
    shutil.copytree(ext, leaky)
    shutil.copy(train[0], leaky / "test" / "NORMAL" / "renamed-copy.jpeg")  # same bytes
    shutil.copy(train[25], leaky / "test" / "PNEUMONIA" / "another-name.jpeg")  # same bytes
    _near_copy(train[3], leaky / "test" / "NORMAL" / "reencoded.jpeg")  # near duplicate
    code, out = _evaluate(str(run), "--data", f"kermany:{leaky}", "--name", "leaky")
    assert code == 0, out
    assert "16 images, 3 seen in training (excluded from the score)" in out and "warning: 3 image(s)" in out
    leaks = pd.read_csv(run / "eval" / "leaky" / "leaks.csv")
    assert sorted(Path(p).name for p in leaks["path"]) == [
        "another-name.jpeg",
        "reencoded.jpeg",
        "renamed-copy.jpeg",
    ]
    assert sorted(leaks["match"]) == ["near duplicate", "same bytes", "same bytes"]
    assert set(leaks["seen_split"]) <= {"train", "val"}
    scored = pd.read_csv(run / "eval" / "leaky" / "predictions.csv")
    assert len(scored) == 16 and not scored["path"].str.contains("copy|another|reencoded").any()
    assert "3 images seen in training" in (run / "eval" / "leaky" / "report.html").read_text()


def test_mixed_internal_and_external_and_run_default(kermany_case: dict) -> None:
    run, root, ext = kermany_case["run"], kermany_case["root"], kermany_case["ext"]
    code, out = _evaluate(str(run), "--data", f"kermany:{root / 'own'}", f"kermany:{ext}")  # --data A B
    assert code == 0, out
    assert "internal (val split of the run)" in out and "the layout's test split): 16 images" in out
    code, out = _evaluate(str(run))  # the run's own data: no test split, so val
    assert code == 0, out
    splits = pd.read_csv(run / "splits.csv")
    assert f"internal (val split of the run): {int((splits['split'] == 'val').sum())} images" in out
    code, out = _evaluate(str(run), f"kermany:{ext}")
    assert code == 2 and "datasets follow --data" in out


def test_folder_of_new_colon_frames(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "colon"
    own, new = tmp_path / "colon", tmp_path / "new_frames"
    frames = {c: sorted((src / c).glob("*.jpg")) for c in ("polyp", "normal-cecum")}
    for c, files in frames.items():
        _copy(files[:16], own / c)
        _copy(files[40:46], new / c)
    shutil.copy(frames["polyp"][2], new / "polyp" / "frame-again.jpg")
    run = _train([f"folder:{own}"], tmp_path / "run", tmp_path / "cache")
    code, out = _evaluate(str(run), "--data", f"folder:{new}")
    assert code == 0, out
    assert (
        "external (folder:" in out
        and "every image): 12 images" in out
        and "12 images, 1 seen in training" in out
    )
    result = json.loads((run / "eval" / "external-new_frames" / "metrics.json").read_text())
    assert result["n_images"] == 12 and sorted(result["class_names"]) == ["normal-cecum", "polyp"]
    gen = (run / "eval" / "generalisation" / "report.md").read_text()
    assert "external-new_frames" in gen and "| val | internal |" in gen
    manifest = tmp_path / "site" / "labels.csv"  # the same frames as a csv: manifest
    manifest.parent.mkdir()
    rows = [f"{p},{p.parent.name}" for p in sorted(new.rglob("*.jpg")) if p.name != "frame-again.jpg"]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    code, out = _evaluate(str(run), "--data", f"csv:{manifest}")
    assert code == 0, out
    assert (
        "external (csv:" in out
        and "every image): 12 images" in out
        and "12 images, 0 seen in training" in out
    )
    assert (run / "eval" / "external-site-labels" / "metrics.json").is_file()


def test_calibrate_on_local_images(kermany_case: dict, tmp_path: Path) -> None:
    from medxfer.data.images import read_image
    from medxfer.evaluate.temperature import apply_temperature
    from medxfer.inference.predictor import Predictor
    from medxfer.runs import load_model, read_model_info

    run = Path(shutil.copytree(kermany_case["run"], tmp_path / "run"))
    code, out = _evaluate(str(run), "--calibrate-on", f"kermany:{kermany_case['ext']}")
    assert code == 0, out
    info = read_model_info(run)
    cal = info.extra["calibration"]
    assert info.temperature == cal["temperature"] != 1.0 and "local calibration" in info.threshold_method
    assert cal["fit_images"] + cal["report_images"] == 16 and "calibration fitted on" in out
    folder = run / "eval" / "external-other_hospital-calibrated"
    fitted = set(json.loads((folder / "calibration.json").read_text())["fit_paths"])
    reported = set(pd.read_csv(folder / "predictions.csv")["path"])
    assert len(reported) == cal["report_images"] and not fitted & reported  # never the same images
    # predict (and serve, which uses Predictor) apply the stored temperature and threshold
    image = read_image(sorted(reported)[0])
    model, raw_info = load_model(run)
    from medxfer.data.transforms import batch_input

    raw = model.predict_proba(batch_input([image], raw_info)).detach().double().numpy()
    p = Predictor(run)
    np.testing.assert_allclose(p.predict_arrays([image]), apply_temperature(raw, info.temperature), atol=1e-6)
    assert p.threshold == pytest.approx(cal["threshold"])
    # the generalisation table never mixes the model before and after calibration: stale val re-made
    val = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    assert val["temperature"] == info.temperature and val["threshold"] == pytest.approx(info.threshold)
    gen = json.loads((run / "eval" / "generalisation" / "generalisation.json").read_text())
    assert [r["set"] for r in gen["rows"]] == ["val", "external-other_hospital-calibrated"]
