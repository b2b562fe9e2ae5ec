"""Finding one's way: `medxfer recipes`, help panels, `models list|summary`, did-you-mean on recipe names,
config keys and commands, `--data` beside positional DATA, `-c demo` alone, a busy port in one line."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medxfer.cli import PANELS, app
from medxfer.config import ConfigError, load_config
from medxfer.recipes import describe, find_recipe, list_recipes

runner = CliRunner()


def _lines(result) -> list[str]:  # noqa: ANN001
    return [line for line in result.output.splitlines() if line.strip()]


def test_recipes_lists_every_recipe_with_one_line() -> None:
    result = runner.invoke(app, ["recipes"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in _lines(result)}
    assert set(list_recipes()) <= set(rows)
    assert "kermany-binary" in rows and "Pneumonia vs normal" in rows["kermany-binary"]
    for name in list_recipes():
        text = describe(name)
        assert text and "\n" not in text and len(text) < 130, (name, text)


def test_recipes_name_prints_the_yaml_and_a_typo_gets_a_suggestion() -> None:
    result = runner.invoke(app, ["recipes", "kermany-binary"])
    assert result.exit_code == 0 and result.output == find_recipe("kermany-binary").read_text()
    bad = runner.invoke(app, ["recipes", "kermany-binray"])
    assert bad.exit_code == 2
    assert len(_lines(bad)) == 1 and "did you mean 'kermany-binary'?" in bad.output


def test_config_key_typo_suggests_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['batch_sise'\]; did you mean 'batch_size'\?"):
        load_config("kermany-binary", ["train.batch_sise=16"])
    with pytest.raises(ConfigError, match="did you mean 'colon'"):
        load_config("colom")


def test_command_typo_suggests_the_command() -> None:
    result = runner.invoke(app, ["evalute"])
    assert result.exit_code == 2 and "Did you mean 'evaluate'?" in result.output


def test_help_groups_every_command_into_a_pipeline_panel() -> None:
    infos = [*app.registered_commands, *app.registered_groups]
    assert {i.rich_help_panel for i in infos} <= set(PANELS)  # nothing falls into "Other"
    help_text = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).output
    for panel in PANELS:
        assert f"─ {panel} ─" in help_text
    assert help_text.index("─ Data ─") < help_text.index("│ check ") < help_text.index("─ Train ─")


def test_help_lists_the_registries_choices() -> None:
    from medxfer.data.layouts import LAYOUTS
    from medxfer.models.backbones import list_backbones
    from medxfer.models.weights import list_weight_sources

    LAYOUTS.register("zz-test-layout", lambda root, options: None)  # the help reads the registry itself
    try:
        output = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    finally:
        LAYOUTS.remove("zz-test-layout")
    words = set(re.findall(r"[\w:-]+", output))
    assert set(list_backbones()) <= words and "zz-test-layout" in words and "{" not in output
    assert {"csv", "kermany", "folder", *list_weight_sources()} <= words
    summary = runner.invoke(app, ["models", "summary", "--help"], env={"COLUMNS": "200"}).output
    assert set(list_backbones()) <= set(re.findall(r"[\w:-]+", summary))


def test_models_is_a_sub_app_and_the_old_forms_still_work() -> None:
    env = {"COLUMNS": "160"}
    plain = runner.invoke(app, ["models", "custom_cnn"], env=env)
    listed = runner.invoke(app, ["models", "list", "custom_cnn"], env=env)
    assert plain.exit_code == listed.exit_code == 0 and "custom_cnn" in listed.output
    assert plain.output == listed.output
    summary = runner.invoke(app, ["models", "summary", "custom_cnn", "--classes", "3"])
    assert summary.exit_code == 0 and "stages" in summary.output
    help_text = runner.invoke(app, ["models", "--help"]).output
    assert " list " in help_text and " summary " in help_text
    missing = runner.invoke(app, ["models", "summary"])
    assert missing.exit_code == 2 and "BACKBONE" in missing.output


def test_demo_recipe_has_data_of_its_own(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDXFER_SHARED_DATA", str(shared_data))
    assert load_config("demo").data.specs == [f"kermany:{shared_data}/kermany"]  # `train -c demo` alone


def test_data_option_and_positional_data_give_the_same_split(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "xrays"
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / cls).mkdir(parents=True)
        for f in sorted((shared_data / "kermany" / "train" / cls).glob("*.jpeg"))[:6]:
            shutil.copy(f, root / cls / f.name)
    spec = f"kermany:{root}"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    first = runner.invoke(app, ["split", spec, "--out", str(a), "--val", "0.3"])
    second = runner.invoke(app, ["split", "--data", spec, "--out", str(b), "--val", "0.3"])
    assert first.exit_code == second.exit_code == 0, second.output
    assert a.read_text() == b.read_text() and len(a.read_text().splitlines()) == 13
    none = runner.invoke(app, ["split", "--out", str(tmp_path / "c.csv")])
    assert none.exit_code == 2 and "--data LAYOUT:PATH" in none.output and not (tmp_path / "c.csv").exists()


def test_serve_on_a_busy_port_is_one_line_before_any_url(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", str(tmp_path / "run"), "--port", str(port)])
    assert result.exit_code == 2
    lines = _lines(result)
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
    assert "http://" not in result.output


def test_help_medxfer_points_to_what_an_installed_package_has() -> None:
    import medxfer

    doc = medxfer.__doc__ or ""
    assert "docs/" not in doc and "DESIGN" not in doc  # files a wheel user does not have
    assert "medxfer --help" in doc and "help(medxfer.train)" in doc and "medxfer recipes" in doc
    assert 'medxfer.train("kermany-binary"' in doc and "run.evaluate()" in doc
