"""Helpers shared by CLI command modules: dataset options and a clean exit on user errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from medxfer.data.datasets import ImageTable

DATA_HELP = (
    "Dataset(s) as LAYOUT:PATH (a bare PATH means folder). Layouts: folder, csv, kermany, ieee8023, "
    "actualmed, figure1, covid19-radiography."
)


def data_option() -> Any:
    """``--data LAYOUT:PATH`` (repeatable): the same datasets a command also takes as positional DATA."""
    return typer.Option(None, "--data", "-d", help=DATA_HELP + " Same as positional DATA; repeatable.")


def dataset_specs(positional: list[str] | None, option: list[str] | None, what: str) -> list[str]:
    """The datasets given as positional DATA and/or ``--data``; one clear line when there are none."""
    specs = [*(positional or []), *(option or [])]
    if not specs:
        fail(f"give at least one dataset as --data LAYOUT:PATH (or positional DATA){what}")
    return specs


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


def console(stderr: bool = False) -> Any:
    """A rich Console that does not cut tables at 80 columns when output goes to a file, a notebook or
    a CI log (rich's default there): it is then 200 columns wide unless ``$COLUMNS`` says otherwise."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = hasattr(stream, "isatty") and stream.isatty()
    width = None if terminal or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=width)


def quiet_lightning(enabled: bool = True) -> Any:
    """Inside the block (when ``enabled``): no Python warnings, and Lightning logs only errors (no tips,
    no "GPU available" lines, no deprecation notes): :func:`medxfer.training.quiet.quiet_fit`."""
    from medxfer.training.quiet import quiet_fit

    return quiet_fit(verbose=not enabled)
