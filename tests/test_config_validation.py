"""The whole config (file + --set) is checked before any work, with one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.config import ConfigError, from_dict, load_config
from medxfer.recipes import find_recipe

BAD_SETS = [
    ("train.batch_size=abc", "train.batch_size='abc': expected an integer"),
    ("data.limit_per_class=sixty", "data.limit_per_class='sixty': expected an integer or null"),
    ("train.augment=strong", "train.augment='strong': unknown augmentation preset"),
    ("stages.0.augment=wild", "stages[0].augment='wild'"),
    ("train.batch_size=0", "train.batch_size=0: expected an integer >= 1"),
    ("data.duplicates=drop", "data.duplicates='drop'; valid: group, drop-cross-class, keep"),
    ("stages.9.lr=1", "no such key 'stages.9.lr'"),
    ("train.seed.x=1", "no such key 'train.seed.x'"),
    ("data.val=1.5", "data.val=1.5: expected a fraction"),
    ("stages.0.bn=fixed", "bn='fixed' train or frozen"),
    ("train.keep=final", "train.keep='final'; valid: best, last"),
]


@pytest.mark.parametrize(("override", "message"), BAD_SETS, ids=[b[0] for b in BAD_SETS])
def test_bad_values_are_refused_with_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_file_values_are_checked_too(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {batch_size: many}\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: train\.batch_size='many': expected an integer"):
        load_config(recipe)
    with pytest.raises(ConfigError, match="stages=.*expected a list"):
        from_dict({"stages": {"epochs": 1}})


def test_cli_fails_before_any_work_and_a_retry_is_not_blocked(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--data", str(tmp_path), "--out", str(out), "--set", "train.augment=strong"]
    )
    assert result.exit_code == 2 and "train.augment='strong'" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_recipes_by_name_and_the_shared_data_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert find_recipe("covid-3class").name == "covid-3class.yaml"
    assert find_recipe("demo").parent.name == "configs"
    with pytest.raises(ConfigError, match="recipe: .*kermany-binary"):
        load_config("no-such-recipe")
    monkeypatch.delenv("MEDXFER_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\$MEDXFER_SHARED_DATA is not set"):
        load_config("kermany-binary")
    monkeypatch.setenv("MEDXFER_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"MEDXFER_SHARED_DATA is '.*nowhere'"):
        load_config("kermany-binary")


def test_weights_default_to_the_backbones_own() -> None:
    assert load_config(None, ["model.backbone=custom_cnn", "model.weights=default"]).model.weights == "none"
    assert load_config(None, ["model.backbone=vgg16", "model.weights=default"]).model.weights == "imagenet"
    assert load_config(None).model.weights == "packaged"  # efficientnet_lite0's listed default
    legacy = from_dict({"data": {"group_duplicates": True}})
    assert legacy.data.duplicates == "group"
    assert from_dict({"data": {"group_duplicates": False}}).data.duplicates == "keep"


def test_nested_types_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"data.label_map=\['a'\]: expected a mapping or null"):
        from_dict({"data": {"label_map": ["a"]}})
    with pytest.raises(ConfigError, match="data.mask_boxes=0.5: expected a list"):
        from_dict({"data": {"mask_boxes": 0.5}})
    assert from_dict({"data": {"label_map": {"x": None}}}).data.label_map == {"x": None}


def test_unknown_top_level_keys_are_refused_not_dropped(tmp_path: Path) -> None:
    """A misspelt section (``trian:``) is an error naming it, from a file, an override and the API."""
    import medxfer

    recipe = tmp_path / "typo.yaml"
    recipe.write_text("trian:\n  batch_size: 3\nmodel:\n  backbone: custom_cnn\n")
    valid = "valid: ['data', 'model', 'name', 'stages', 'train']"
    with pytest.raises(
        ConfigError,
        match=r"typo.yaml: unknown key\(s\) \['trian'\]; did you mean 'train'\?; "
        + valid.replace("[", r"\["),
    ):
        load_config(recipe)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trian'\]"):
        load_config(None, ["trian.batch_size=3"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trian'\]"):
        medxfer.make_config(None, overrides={"trian.batch_size": 3})
    res = CliRunner().invoke(app, ["train", "-c", str(recipe), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "unknown key(s) ['trian']" in res.output
    assert not (tmp_path / "run").exists()
