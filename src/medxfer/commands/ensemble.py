"""``medxfer ensemble``: trained runs saved as one run folder (the mean of their probabilities)."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import echo_err, fail


def ensemble(
    runs: list[Path] = typer.Argument(..., help="Two or more trained run folders (the members)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write the ensemble into."),
    allow_different_splits: bool = typer.Option(
        False,
        "--allow-different-splits",
        help="Members trained on different splits.csv: keep as val/test only images no member trained on.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace the files of an existing run in --out."),
) -> None:
    """Save several runs as one ensemble run: predict, evaluate, explain, export and serve use it as any run.

    The members must share classes (same order), output kind, channels, mask boxes and model.preprocess,
    and one splits.csv (else evaluating on a member's training images would leak). Input sizes and
    mean/std may differ (Lite0 at 224 + Lite2 at 260): the ensemble takes the largest size and each member
    resizes and re-normalises it inside the network.
    """
    from medxfer.api import ensemble as build

    try:
        run = build(runs, out, force=force, allow_different_splits=allow_different_splits, log=echo_err)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    info = run.info
    echo_err(
        f"ensemble of {len(info.networks)} runs -> {run.path} "
        f"({', '.join(n.backbone for n in info.networks)}; classes {', '.join(info.class_names)})"
    )


def register(app: typer.Typer) -> None:
    """Add ``ensemble`` to the CLI."""
    app.command("ensemble")(ensemble)
