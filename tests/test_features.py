"""Frozen-network features: file round trip, extraction, content-keyed cache, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.features.extract import (
    FeatureSet,
    backbone_meta,
    extract_features,
    load_encoder,
    load_features,
    model_key,
    save_features,
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def _folder(root, per_class=3):
    """A tiny folder dataset: two classes, distinct gray images."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["normal", "pneumonia"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (40, 48), dtype=np.uint8) // (c + 1)
            Image.fromarray(arr).save(root / name / f"img{i}.png")
    return root


def _table(root):
    from medxfer.data.datasets import load_datasets

    return load_datasets([f"folder:{root}"])


def test_save_load_round_trip(tmp_path):
    cols = {
        "path": np.array(["/a/1.png", "/b/ü.png"]),
        "label_name": np.array(["x", "y"]),
        "patient_id": np.array(["p1", "p2"]),
        "split": np.array(["train", ""]),
        "source": np.array(["s", "s"]),
    }
    fs = FeatureSet(
        np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0, 1]), ["x", "y"], cols, {"k": [1]}
    )
    save_features(fs, tmp_path / "f.npz")
    back = load_features(tmp_path / "f.npz")
    np.testing.assert_array_equal(back.features, fs.features)
    assert back.labels.tolist() == [0, 1] and back.class_names == ["x", "y"]
    assert back.columns["path"].tolist() == ["/a/1.png", "/b/ü.png"]
    assert back.splits.tolist() == ["train", ""] and back.meta == {"k": [1]}
    assert back.subset(back.labels == 1).columns["patient_id"].tolist() == ["p2"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_features(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_features(tmp_path / "bad.npz")


def test_meta_from_weights_spec_and_key_changes():
    meta = backbone_meta("custom_cnn", "none", input_size=32, channels="gray")
    assert meta["input_size"] == 32 and meta["mean"] == [0.5, 0.5, 0.5] and meta["std"] == [0.5, 0.5, 0.5]
    assert backbone_meta("custom_cnn", "none")["input_size"] == 224
    other = {**meta, "input_size": 64}
    assert model_key(meta) != model_key(other)
    assert model_key(meta) == model_key(dict(meta))


def test_extract_matches_direct_embedding_and_caches(tmp_path):
    root = _folder(tmp_path / "data")
    table = _table(root)
    meta = backbone_meta("custom_cnn", "none", input_size=32, channels="gray")
    torch.manual_seed(0)
    model = load_encoder(meta)
    fs = extract_features(table, meta, model=model, progress=False)
    assert fs.features.shape == (6, 128) and fs.features.dtype == np.float32
    assert fs.meta["computed_rows"] == 6 and fs.meta["cached_rows"] == 0
    assert fs.labels.tolist() == table.labels.tolist()
    assert fs.columns["path"].tolist() == [str(p) for p in table.table["path"]]
    # Same numbers as embedding one image by hand (resize -> [0, 1] -> mean/std -> embed).
    img = np.array(Image.open(table.table["path"][0]).resize((32, 32), Image.Resampling.BILINEAR))
    x = torch.from_numpy(img).float().div(255).sub(0.5).div(0.5).expand(1, 3, 32, 32)
    with torch.no_grad():
        direct = model.embed(x).numpy()[0]
    np.testing.assert_allclose(fs.features[0], direct, atol=2e-2)

    again = extract_features(table, meta, model=model, progress=False)
    assert again.meta["computed_rows"] == 0 and again.meta["cached_rows"] == 6
    np.testing.assert_array_equal(again.features, fs.features)

    Image.fromarray(np.zeros((40, 48), np.uint8)).save(table.table["path"][2])  # one file changes
    third = extract_features(table, meta, model=model, progress=False)
    assert third.meta["computed_rows"] == 1
    np.testing.assert_array_equal(third.features[[0, 1, 3, 4, 5]], fs.features[[0, 1, 3, 4, 5]])


def test_features_command_writes_npz_and_second_call_is_cached(tmp_path):
    root = _folder(tmp_path / "data", per_class=2)
    out = tmp_path / "f.npz"
    args = ["features", "--backbone", "custom_cnn", "--weights", "none", "--data", str(root)]
    args += ["--input-size", "32", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "4 computed" in r.output
    fs = load_features(out)
    assert fs.features.shape == (4, 128) and fs.class_names == ["normal", "pneumonia"]
    assert fs.meta["backbone"] == "custom_cnn" and fs.meta["input_size"] == 32
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = CliRunner().invoke(app, [*args, "--overwrite"])
    assert r.exit_code == 0 and "4 cached, 0 computed" in r.output, r.output


def test_features_command_errors(tmp_path):
    root = _folder(tmp_path / "data", per_class=1)
    base = ["features", "--data", str(root), "--out", str(tmp_path / "f.npz")]
    r = CliRunner().invoke(app, base)
    assert r.exit_code == 2 and "--backbone" in r.output
    r = CliRunner().invoke(app, [*base, "--backbone", "nonet"])
    assert r.exit_code == 2 and "efficientnet_lite0" in r.output


def test_weights_digest_of_a_pretraining_folder_follows_its_weights(tmp_path):
    """``file:DIR`` (a ``medxfer pretrain`` output) is keyed by DIR/weights.safetensors' content, so
    re-pretraining into the same folder never serves the old folder's cached features."""
    from medxfer.features.extract import _weights_digest

    folder = tmp_path / "pt"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"first")
    first = _weights_digest(f"file:{folder}")
    (folder / "weights.safetensors").write_bytes(b"second weights")
    assert first and _weights_digest(f"file:{folder}") not in ("", first)
    assert _weights_digest(f"file:{tmp_path / 'missing'}") == ""
