"""Evaluation images (and their copies) stay out of pretraining; pretraining recipes resolve a training
recipe's split; ``weights: pretrained:NAME`` runs a recipe once into the cache and loads it after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medxfer.io import shared_data_dir

KERMANY = shared_data_dir() / "kermany" / "train"
pytestmark = pytest.mark.skipif(not KERMANY.is_dir(), reason="needs ../shared/data/kermany")


def _originals(n: int) -> list[Path]:
    return sorted((KERMANY / "NORMAL").glob("*.jpeg"))[:n]


@pytest.fixture()
def pool(tmp_path: Path) -> Path:
    """A plain folder (no class sub-folders) of 32 real X-rays."""
    folder = tmp_path / "pool"
    folder.mkdir()
    for src in _originals(32):
        shutil.copy(src, folder / src.name)
    return folder


def test_eval_images_and_their_copies_are_left_out_and_counted(pool: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from medxfer.pretraining.card import PretrainSettings
    from medxfer.pretraining.hygiene import left_out
    from medxfer.pretraining.images import gather_images

    paths = gather_images([f"folder:{pool}"])
    assert len(paths) == 32  # a plain folder of images is data too
    held = tmp_path / "held"
    held.mkdir()
    copy = held / "copy.jpeg"
    shutil.copy(paths[1], copy)  # byte-identical copy of a pool image
    near = held / "near.jpeg"  # the same X-ray re-encoded: a near-copy
    Image.fromarray(np.asarray(Image.open(paths[2]))).save(near, quality=70)
    splits = tmp_path / "splits.csv"
    rows = [(paths[0], "val"), (str(copy), "test"), (str(near), "val"), (paths[3], "train")]
    splits.write_text("path,split\n" + "".join(f"{p},{s}\n" for p, s in rows))
    settings = PretrainSettings(data=[f"folder:{pool}"], splits=str(splits))
    kept, excluded = left_out(paths, settings)
    assert excluded == {"evaluation": 1, "near_duplicates": 2}
    assert set(paths) - set(kept) == {paths[0], paths[1], paths[2]}
    settings.include_eval = True
    kept, excluded = left_out(paths, settings)
    assert kept == paths and excluded == {"evaluation_included": 1}
    assert f"pretraining on 1 evaluation image(s) (--include-eval): {paths[0]}" in capsys.readouterr().err


def _train_recipe(tmp_path: Path, pool: Path) -> Path:
    """A training recipe over a labelled folder that holds copies of four pool images."""
    data = tmp_path / "labelled"
    sources = {
        "NORMAL": sorted(pool.glob("*.jpeg"))[:4],
        "PNEUMONIA": sorted((KERMANY / "PNEUMONIA").glob("*.jpeg"))[:4],
    }
    for cls, files in sources.items():
        (data / cls).mkdir(parents=True)
        for src in files:
            shutil.copy(src, data / cls / src.name)
    recipe = tmp_path / "tiny-train.yaml"
    recipe.write_text(f"data: {{specs: ['folder:{data}'], val: 0.5, seed: 0}}\n")
    return recipe


def test_pretrained_source_runs_the_recipe_once_and_loads_it(pool: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from medxfer.config import load_config
    from medxfer.data.resolve import resolve_table
    from medxfer.models.backbones import build_model
    from medxfer.models.weights import load_weights
    from medxfer.pretraining import engine
    from medxfer.pretraining.recipes import load_recipe
    from medxfer.runs import ModelInfo

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    train_recipe = _train_recipe(tmp_path, pool)
    recipe = tmp_path / "tiny-pre.yaml"
    recipe.write_text(
        f"name: tiny\ndata: ['folder:{pool}']\nexclude_eval_of: {train_recipe}\nbackbone: custom_cnn\n"
        "weights: none\nmethod: simclr\nepochs: 1\ninput_size: 32\nbatch_size: 8\nthreads: 1\n"
    )
    table = resolve_table(load_config(train_recipe).data).table  # the split `medxfer train` makes
    val = sorted(table.loc[table["split"] == "val", "path"])
    assert val and load_recipe(recipe).exclude_paths == val
    model = build_model("custom_cnn", 2)
    load_weights(model, "custom_cnn", f"pretrained:{recipe}")
    folders = list((tmp_path / "cache" / "pretrain").glob("tiny-*"))
    assert len(folders) == 1
    card = json.loads((folders[0] / "card.json").read_text())
    copies = sum(1 for p in val if Path(p).parent.name == "NORMAL")  # val copies of pool images
    assert card["excluded"] == {"evaluation": 0, "near_duplicates": copies}
    assert card["images"] == 32 - copies
    from safetensors.torch import load_file

    pre = load_file(str(folders[0] / "weights.safetensors"))
    assert torch.equal(model.backbone.state_dict()["features.0.0.weight"], pre["features.0.0.weight"])
    # the source weights' size (custom_cnn: 224), not the 32 px the pretraining ran at
    assert ModelInfo.for_backbone("custom_cnn", f"pretrained:{recipe}", ["a", "b"]).input_size == 224

    def no_second_run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the cached pretraining ran again")

    monkeypatch.setattr(engine, "pretrain_run", no_second_run)
    load_weights(build_model("custom_cnn", 2), "custom_cnn", f"pretrained:{recipe}")


def test_packaged_pretraining_recipe_and_training_recipe() -> None:
    from medxfer.config import load_config
    from medxfer.pretraining.recipes import read_recipe
    from medxfer.recipes import list_pretrain_recipes, list_recipes

    assert "xray-lite0" in list_pretrain_recipes() and "xray-lite0" not in list_recipes()
    _, data = read_recipe("xray-lite0")
    assert data["exclude_eval_of"] == "kermany-binary" and data["backbone"] == "efficientnet_lite0"
    assert len(data["data"]) == 5
    cfg, base = load_config("kermany-binary-xray"), load_config("kermany-binary")
    assert cfg.model.weights == "pretrained:xray-lite0"
    assert (cfg.data, cfg.stages, cfg.train) == (base.data, base.stages, base.train)


def test_recipe_keys_can_be_overridden_and_bad_keys_are_named(tmp_path: Path) -> None:
    from medxfer.pretraining.images import PretrainError
    from medxfer.pretraining.recipes import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: ['folder:{KERMANY}']\nepochs: 3\nmax_images: 100\n")
    settings = load_recipe(recipe, sets=["epochs=20", "max_images=null", "method=simclr"])
    assert (settings.epochs, settings.max_images, settings.method) == (20, None, "simclr")
    with pytest.raises(PretrainError, match="--set 'epoch=2': expected KEY=VALUE, KEY one of: accelerator"):
        load_recipe(recipe, sets=["epoch=2"])
    recipe.write_text("data: [x]\nmodel: {}\n")
    with pytest.raises(PretrainError, match=r"r.yaml: unknown key\(s\) model; valid: accelerator"):
        load_recipe(recipe)


def test_cache_key_follows_settings_not_comments(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from medxfer.pretraining.recipes import recipe_key

    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: ['folder:${DATA_ROOT}/a']\nepochs: 4\n")
    monkeypatch.setenv("DATA_ROOT", "/one")
    key = recipe_key(recipe)
    assert key.startswith("r-")
    recipe.write_text(
        "# measured: 16-23 min\nepochs:   4   # the recipe's setting\ndata:\n  - folder:${DATA_ROOT}/a\n"
    )
    assert recipe_key(recipe) == key  # comments, layout and key order are not settings
    recipe.write_text("data: ['folder:${DATA_ROOT}/a']\nepochs: 10\n")
    assert recipe_key(recipe) != key
    recipe.write_text("data: ['folder:${DATA_ROOT}/a']\nepochs: 4\n")
    monkeypatch.setenv("DATA_ROOT", "/two")  # the same text reading other images
    assert recipe_key(recipe) != key


def test_cache_key_follows_the_split_of_the_recipe_it_leaves_out(tmp_path: Path) -> None:
    from medxfer.pretraining.recipes import recipe_key

    train = tmp_path / "t.yaml"
    train.write_text("data: {specs: ['folder:/x'], val: 0.2}\nmodel: {backbone: custom_cnn}\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: ['folder:/a']\nexclude_eval_of: {train}\n")
    key = recipe_key(recipe)
    train.write_text("data: {specs: ['folder:/x'], val: 0.3}\nmodel: {backbone: custom_cnn}\n")
    assert recipe_key(recipe) != key  # other val images: the cached pretraining may have seen them


def test_missing_lightly_is_one_line_with_the_install_hint(monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    import importlib.util

    import medxfer
    from medxfer.pretraining.images import PretrainError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lightly" else real(name, *a)
    )
    with pytest.raises(
        PretrainError, match=r"^medxfer pretrain needs lightly: pip install 'medxfer\[pretrain\]'$"
    ):
        medxfer.pretrain([f"folder:{KERMANY}"], tmp_path / "x")
