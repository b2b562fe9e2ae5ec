"""``medxfer augment``: offline augmentation of a small class into a new folder."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import DATA_HELP, data_option, dataset_specs, fail, load_data


def augment(
    data: list[str] = typer.Argument(None, help=DATA_HELP),
    data_opt: list[str] | None = data_option(),
    class_name: str = typer.Option(..., "--class", help="The class to grow."),
    to: int = typer.Option(..., "--to", help="Target number of images of that class (originals + copies)."),
    out: Path = typer.Option(..., "--out", help="New folder for the copies (never inside the source)."),
    preset: str = typer.Option("medium", help="Preset: none, light, medium, heavy, acquisition."),
    task: str | None = typer.Option(None, help="Label task."),
    splits: Path | None = typer.Option(None, help="splits.csv: only train images are augmented."),
    seed: int = typer.Option(0),
) -> None:
    """Write augmented copies of a small class (with a manifest keeping patient ids)."""
    from medxfer.augment import augment_class

    table = load_data(dataset_specs(data, data_opt, ""), task, splits)
    if splits is None and not (table.table["split"] == "train").any():
        typer.secho(
            "warning: no --splits: copies are made from every image of the class, also those that will be "
            "validation or test images; split first (medxfer split ... --out splits.csv) and pass --splits "
            "so only training images are grown (copies keep their patient id either way)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    try:
        n = augment_class(table, class_name, to, out, preset, seed)
    except (ValueError, FileExistsError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {n} augmented images to {out}/{class_name}; load them with csv:{out}/manifest.csv")


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
