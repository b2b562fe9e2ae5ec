"""CLI output fit for notebooks and logs: where to start, tables not cut at 80 columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from medxfer.cli import PANELS, app


def test_help_says_where_to_start() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert text.index("medxfer demo") < text.index("medxfer check")
    first_panel = next(iter(PANELS))  # the commands are listed in panels (Data, Train, ...)
    assert text.index("Start with") < text.index(f"{first_panel} ─")


def test_tables_are_not_cut_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    names = ["a_really_long_class_name_number_one", "another_quite_long_class_name_two"]
    for n in names:
        (tmp_path / n).mkdir()
        for i in range(3):
            img = np.random.default_rng(i + len(n)).integers(0, 255, (40, 40), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / n / f"{i}.png")
    result = CliRunner().invoke(app, ["check", f"folder:{tmp_path}", "--quiet"], env={"COLUMNS": ""})
    assert result.exit_code == 0, result.output
    for n in names:
        assert n in result.output  # rich's 80-column default folded or cut these
    assert max(len(line) for line in result.output.splitlines()) > 80
    assert "6 of 6 images have no patient id" in result.output
