"""The `acquisition` augmentation preset where augmentation is applied: training and `medxfer augment`."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from tiny import tiny_config
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.config import save_config
from medxfer.data import shifts


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Count the acquisition primitives augmentation calls (they still run)."""
    calls: Counter = Counter()
    for name in ("gamma", "blur", "noise", "jpeg"):
        real = getattr(shifts, name)

        def spy(*args, _name=name, _real=real, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(shifts, name, spy)
    return calls


def test_training_with_the_acquisition_preset_by_override(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg_file = tmp_path / "c.yaml"
    save_config(tiny_config(tiny_data), cfg_file)
    calls = _count_calls(monkeypatch)
    out = tmp_path / "run"
    args = ["train", "-c", str(cfg_file), "--out", str(out), "--quiet"]
    args += ["--set", "train.augment=acquisition", "--set", "train.max_batches_per_epoch=1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["augment"] == "acquisition"
    # stage "ft" (2 epochs x 1 batch of 8) is augmented, the head stage (augment: none) is not
    assert calls["gamma"] == 16
    assert 0 < calls["noise"] < 16 and 0 < calls["blur"] + calls["jpeg"] < 32  # p_degrade = 0.5 each
    assert (out / "model.safetensors").is_file()


def test_offline_augment_with_the_acquisition_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "mydata"
    rng = np.random.default_rng(0)
    for cls, n in (("small", 3), ("big", 6)):
        (data / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(40, 200, (64, 64), dtype=np.uint8)).save(data / cls / f"p{i}_0.png")
    calls = _count_calls(monkeypatch)
    out = tmp_path / "aug"
    res = CliRunner().invoke(
        app,
        ["augment", str(data), "--class", "small", "--to", "9", "--out", str(out), "--preset", "acquisition"],
    )
    assert res.exit_code == 0, res.output
    copies = sorted((out / "small").glob("*.png"))
    assert len(copies) == 6 and calls["gamma"] == 6
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    for row, copy in zip(rows, copies, strict=True):
        original = np.asarray(Image.open(row["augmented_from"]))
        augmented = np.asarray(Image.open(copy))
        assert augmented.shape == original.shape and not np.array_equal(augmented, original)
