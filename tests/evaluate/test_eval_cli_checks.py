"""``medxfer evaluate``: the checks of its arguments and the notes it prints, message by message."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medxfer.cli import app

runner = CliRunner()


def test_argument_checks_name_the_bad_value(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(tmp_path), "--split", "bogus"])
    assert res.exit_code == 2 and "not a medxfer run folder (no model.json)" in res.output  # checked first
    res = runner.invoke(app, ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--split", "bogus"])
    assert res.exit_code == 2 and "split 'bogus': valid: train, val, test, all" in res.output
    res = runner.invoke(app, ["evaluate", str(tiny_run), "extra"])
    assert res.exit_code == 2 and "unexpected argument(s) extra: datasets follow --data" in res.output
    res = runner.invoke(app, ["evaluate", str(tiny_run)])
    assert res.exit_code == 2 and "names no data.specs; pass LAYOUT:PATH" in res.output
    missing = tmp_path / "nowhere.csv"
    data = ["--data", str(tiny_folder)]
    res = runner.invoke(app, ["evaluate", str(tiny_run), *data, "--splits", str(missing)])
    assert res.exit_code == 2 and f"{missing}: splits file not found" in res.output
    assert not (tiny_run / "eval").exists()  # nothing evaluated on a bad command line


def test_split_on_external_data_only_is_noted(tiny_folder: Path, tiny_run: Path) -> None:
    args = ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--split", "test"]
    res = runner.invoke(app, [*args, "--n-boot", "10", "--worst", "0"])
    assert res.exit_code == 0, res.output
    assert "note: split test applies to the run's own data; every dataset here is external" in res.output
    assert "20 images, 20 patients" in res.output and "report: " in res.output
