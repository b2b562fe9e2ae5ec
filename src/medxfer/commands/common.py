"""Helpers shared by CLI command modules: dataset options and a clean exit on user errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from medxfer.data.datasets import ImageTable

DATA_HELP = "Dataset(s) as LAYOUT:PATH (a bare PATH means folder). Layouts: {layouts}."


def _backbones() -> str:
    from medxfer.models.backbones import list_backbones

    return ", ".join(list_backbones())


def _layouts() -> str:
    from medxfer.data.datasets import list_layouts

    return ", ".join(list_layouts())


def _weights() -> str:
    import medxfer.models.backbones  # noqa: F401 (registers every built-in source)
    from medxfer.models.weights import list_weight_sources

    return " | ".join(list_weight_sources())


def _classifiers() -> str:
    from medxfer.features.classifiers import list_classifiers

    return ", ".join(list_classifiers())


# A help text names a registry's choices with a marker, filled in from the registry when help is shown
# (RegistryHelp): never retyped, and `medxfer --help` or a command run imports no registry (torch) for it.
CHOICES: dict[str, Callable[[], str]] = {
    "{backbones}": _backbones,
    "{layouts}": _layouts,
    "{weights}": _weights,
    "{classifiers}": _classifiers,
}


def fill_choices(text: str) -> str:
    """``text`` with each marker of :data:`CHOICES` (``{backbones}``, ...) replaced by the names."""
    for marker, names in CHOICES.items():
        if marker in text:
            text = text.replace(marker, names())
    return text


class RegistryHelp(TyperCommand):
    """A command whose help fills in registry choices (:func:`fill_choices`) when it is shown."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.params:
            help_text = getattr(param, "help", None)
            if help_text and "{" in help_text:
                param.help = fill_choices(help_text)  # type: ignore[attr-defined]
        return super().format_help(ctx, formatter)


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
