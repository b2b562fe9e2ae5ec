"""``medxfer summary RUN``: the trained model's layer table and what each stage of its recipe trained."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import fail


def summary(
    run: Path = typer.Argument(..., help="Run folder (model.json + model.safetensors)."),
    depth: int = typer.Option(2, "--depth", min=1, help="Nesting depth of the layer table."),
) -> None:
    """Layer table (output shapes, parameters, trainable) of a run's model, via torchinfo."""
    from medxfer.api import load_run

    try:
        text = load_run(run).summary(depth=depth)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Add ``summary`` to the CLI."""
    app.command("summary")(summary)
