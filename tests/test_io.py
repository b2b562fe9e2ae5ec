"""medxfer.io: the shared file helpers, and the library leaving the process environment alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medxfer.io import atomic_write_text, expand_vars, figure_png, markdown_table, pyplot


def test_markdown_table_escapes_pipes_and_blanks_none() -> None:
    md = markdown_table(["a", "b|c"], [[1, None], ["x|y", 0.5]])
    assert md.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 |  |", "| x\\|y | 0.5 |"]


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_figure_png_closes_pyplot_figures() -> None:
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    data = figure_png(fig, dpi=20)
    assert data.startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)


def test_shared_data_default_does_not_touch_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medxfer.config import load_config

    monkeypatch.delenv("MEDXFER_SHARED_DATA", raising=False)
    monkeypatch.setenv("I12_OTHER", "/o")
    assert (
        expand_vars("${MEDXFER_SHARED_DATA}/k:$I12_OTHER:${I12_UNSET}") == "../shared/data/k:/o:${I12_UNSET}"
    )
    (tmp_path / "shared" / "data" / "kermany").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # ../shared/data is the default, relative to the working directory
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("data:\n  specs: ['kermany:${MEDXFER_SHARED_DATA}/kermany']\n")
    cfg = load_config(cfg_file)
    assert cfg.data.specs == ["kermany:../shared/data/kermany"]
    assert "MEDXFER_SHARED_DATA" not in os.environ
