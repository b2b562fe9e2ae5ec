"""Helpers shared by CLI command modules: dataset options and a clean exit on user errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from medxfer.data.datasets import ImageTable

DATA_HELP = (
    "Dataset(s) as LAYOUT:PATH (a bare PATH means folder). Layouts: folder, csv, kermany, ieee8023, "
    "actualmed, figure1, covid19-radiography."
)


def fail(message: str, code: int = 2) -> None:
    """Print an actionable error on stderr and exit with ``code`` (2 = bad command line/input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_data(
    specs: list[str],
    task: str | None = None,
    splits: Path | None = None,
) -> ImageTable:
    """Load and combine datasets given on the command line, optionally with a splits.csv applied."""
    from medxfer.api import load_table
    from medxfer.data.datasets import DatasetError

    try:
        table = load_table(specs, task=task, splits=splits)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    return table


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
