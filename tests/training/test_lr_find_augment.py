"""LR range test, `lr: auto`, augmentation presets and `medxfer augment`."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny_config
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.transforms import PRESETS, augment_uint8, get_augment
from medxfer.training.lr_find import suggest_lr
from medxfer.training.runner import train_run


def test_suggest_lr_finds_the_steepest_fall() -> None:
    lrs = np.logspace(-6, 0, 60)
    losses = 2.0 / (1 + np.exp(3 * (np.log10(lrs) + 3)))  # falls fastest at 1e-3
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3, rel=0.6)


def test_lr_auto_runs_the_range_test_and_stores_the_rate(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_data)
    cfg.stages[0].lr = "auto"
    result = train_run(cfg, tmp_path / "run", progress=False)
    assert (result.run_dir / "lr_find.png").stat().st_size > 5_000
    saved = (result.run_dir / "config.yaml").read_text()
    lr = float(saved.split("lr: ", 1)[1].split()[0])
    assert 1e-6 <= lr <= 1.0


def test_lr_find_command_writes_plot(tiny_data: Path, tmp_path: Path) -> None:
    from medxfer.config import save_config

    cfg_file = tmp_path / "c.yaml"
    save_config(tiny_config(tiny_data), cfg_file)
    out = tmp_path / "lr.png"
    res = CliRunner().invoke(app, ["lr-find", "-c", str(cfg_file), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "suggested lr:" in res.output and out.stat().st_size > 5_000


def test_presets_keep_shape_and_vary_with_seed() -> None:
    img = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    for name, aug in PRESETS.items():
        a = augment_uint8(img, aug, np.random.default_rng(1))
        assert a.shape == img.shape and a.dtype == np.uint8
        if name != "none":
            assert not np.array_equal(a, augment_uint8(img, aug, np.random.default_rng(2)))
    assert get_augment({"preset": "light", "rotation": 5, "shear": 0.2, "zoom": 0.2}).shear == 0.2
    assert get_augment({"brightness": [0.2, 1.0]}).brightness == [0.2, 1.0]
    assert PRESETS["medium"].hflip == 0.0  # X-rays: no flips unless asked
    with pytest.raises(ValueError, match="valid"):
        get_augment({"rotate": 5})


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")
    }


def test_augment_grows_a_class_into_a_new_folder(tiny_data: Path, tmp_path: Path) -> None:
    before = _digest(tiny_data)
    out = tmp_path / "aug"
    res = CliRunner().invoke(
        app, ["augment", str(tiny_data), "--class", "disc", "--to", "20", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    files = sorted((out / "disc").glob("*.png"))
    assert len(files) == 20 - 12
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 8 and all(r["patient_id"] for r in rows)
    assert _digest(tiny_data) == before  # the source is untouched
    again = CliRunner().invoke(
        app, ["augment", str(tiny_data), "--class", "disc", "--to", "20", "--out", str(out)]
    )
    assert again.exit_code == 2 and "already holds files" in again.output
    inside = CliRunner().invoke(
        app,
        ["augment", str(tiny_data), "--class", "disc", "--to", "20", "--out", str(tiny_data / "disc" / "x")],
    )
    assert inside.exit_code == 2 and "overlaps the source" in inside.output


def test_augment_keeps_format_reflects_and_explains(tmp_path: Path) -> None:
    from PIL import Image

    from medxfer.data.transforms import Augment

    data = tmp_path / "mydata"
    for cls in ("small", "big"):
        (data / cls).mkdir(parents=True)
        for i in range(3 if cls == "small" else 6):
            img = np.full((48, 48), 180, np.uint8)
            img[10:20, 10:30] = 90
            Image.fromarray(img).save(data / cls / f"p{i}_0.jpg", quality=95)
    runner = CliRunner()
    inside = runner.invoke(
        app, ["augment", str(data), "--class", "small", "--to", "6", "--out", str(data / "aug")]
    )
    assert inside.exit_code == 2 and "overlaps the source" in inside.output and not (data / "aug").exists()
    low = runner.invoke(
        app, ["augment", str(data), "--class", "small", "--to", "2", "--out", str(tmp_path / "a")]
    )
    assert low.exit_code == 2 and "already has 3 images" in low.output and "more than 3" in low.output
    ok = runner.invoke(
        app, ["augment", str(data), "--class", "small", "--to", "6", "--out", str(tmp_path / "a")]
    )
    assert ok.exit_code == 0, ok.output
    assert "no --splits" in ok.output
    copies = sorted((tmp_path / "a" / "small").iterdir())
    assert len(copies) == 3 and all(p.suffix == ".jpg" for p in copies)
    assert {Image.open(p).format for p in copies} == {"JPEG"}
    # reflection padding: a rotated bright image has no dark corners
    bright = np.full((64, 64), 200, np.uint8)
    spun = augment_uint8(bright, Augment(rotation=30), np.random.default_rng(0), pad="reflect")
    assert spun.min() >= 190
    assert augment_uint8(bright, Augment(rotation=30), np.random.default_rng(0)).min() < 50  # the old black
