"""Stress test on a sample, not stressing what was not asked for, and progress bars (issue 22 item 4).

Old code: ``evaluate RUN --data folder:NEW --stress`` also stress-tested the run's whole internal val set
(made for the generalisation table), every stress test used every image, and evaluate/explain showed
nothing for minutes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.inference.stress import stress_sample


def test_stress_sample_is_stratified_and_keeps_patients_whole() -> None:
    y = np.array([0] * 60 + [1] * 40)
    groups = [f"p{i // 2}" for i in range(100)]  # two images per patient, one class each
    idx = stress_sample(y, groups, 20, seed=3)
    assert len(idx) == 20
    assert np.bincount(y[idx]).tolist() == [12, 8]  # the classes' 60/40 proportions
    picked = {groups[i] for i in idx}
    assert sorted(i for i in range(100) if groups[i] in picked) == idx.tolist()  # whole patients
    assert stress_sample(y, groups, 20, seed=3).tolist() == idx.tolist()  # seeded
    assert stress_sample(y, groups, 0).tolist() == list(range(100))
    assert stress_sample(y, groups, 500).tolist() == list(range(100))


@pytest.fixture
def run_with_own_data(tiny_run: Path, tiny_folder: Path) -> Path:
    """The tiny run with its own data (the synthetic folder) and splits.csv: 14 train, 6 val images."""
    import pandas as pd

    paths = sorted(str(p) for p in tiny_folder.rglob("*.png"))
    split = ["val" if i % 10 >= 7 else "train" for i in range(len(paths))]
    pd.DataFrame({"path": paths, "split": split}).to_csv(tiny_run / "splits.csv", index=False)
    (tiny_run / "config.yaml").write_text(
        f"data:\n  specs: ['folder:{tiny_folder}']\n  task: null\nmodel:\n  backbone: custom_cnn\n"
    )
    return tiny_run


def test_external_stress_uses_a_sample_and_leaves_internal_val_unstressed(
    run_with_own_data: Path, shared_data: Path, tmp_path: Path
) -> None:
    ext = tmp_path / "new"
    for cls in ("NORMAL", "PNEUMONIA"):
        (ext / cls).mkdir(parents=True)
        for f in sorted((shared_data / "kermany" / "train" / cls).glob("*.jpeg"))[:6]:
            shutil.copy(f, ext / cls / f.name)
    args = ["evaluate", str(run_with_own_data), "--data", f"folder:{ext}", "--stress", "--stress-images", "4"]
    res = CliRunner().invoke(app, [*args, "--n-boot", "10", "--worst", "0"])
    assert res.exit_code == 0, res.output
    assert "on 4 of 12 images (a sample: whole patients per class)" in res.output
    saved = json.loads((run_with_own_data / "eval" / "external-new" / "metrics.json").read_text())
    assert saved["stress"]["n_images"] == 4 and saved["stress"]["n_total"] == 12
    assert saved["n_images"] == 12  # the headline metrics still use every image
    val = run_with_own_data / "eval" / "val"
    assert (val / "metrics.json").is_file()  # made for the generalisation table...
    assert not (val / "stress.json").exists()  # ...without a stress test nobody asked for
    assert "stress" not in json.loads((val / "metrics.json").read_text())


def test_evaluate_and_explain_show_progress_unless_asked_not_to(
    tiny_run: Path, tiny_folder: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from medxfer.api import load_run
    from medxfer.inference.cams import explain_files

    run = load_run(tiny_run)
    run.evaluate(f"folder:{tiny_folder}", split=None, n_boot=10, worst=0)
    assert "predict" in capfd.readouterr().err
    run.evaluate(f"folder:{tiny_folder}", split=None, n_boot=10, worst=0, progress=False, name="q")
    assert capfd.readouterr().err == ""
    files = sorted(str(p) for p in tiny_folder.rglob("*.png"))[:3]
    explain_files(str(tiny_run), files, tmp_path / "cams", progress=True)
    assert "explain" in capfd.readouterr().err
    explain_files(str(tiny_run), files, tmp_path / "cams2")
    assert capfd.readouterr().err == ""
