"""``medxfer split``: patient-grouped, class-stratified train/val/test splits written to splits.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medxfer.commands.common import DATA_HELP, console, data_option, dataset_specs, fail, load_data

if TYPE_CHECKING:
    from medxfer.data.datasets import ImageTable


def split(
    data: list[str] = typer.Argument(None, help=DATA_HELP),
    data_opt: list[str] | None = data_option(),
    out: Path = typer.Option(..., "--out", help="splits.csv to write (columns path,label_name,...,split)."),
    val: float = typer.Option(0.2, help="Validation fraction per class (if the data has no val split)."),
    test: float = typer.Option(0.0, help="Test fraction per class (if the data has no test split)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same splits."),
    task: str | None = typer.Option(None, help="Label task, e.g. kermany-binary, covid-3class."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
    group_duplicates: bool = typer.Option(
        False, help="Treat exact/near-duplicate images (video frames, re-published copies) as one patient."
    ),
) -> None:
    """Split DATA by patient, stratified by class, keeping splits the layout gives (e.g. test/)."""
    from medxfer.data.splits import SplitError, assign_splits, save_splits

    if out.exists() and not force:
        fail(f"{out} already exists; pass --force to overwrite it or choose another --out")
    if out.exists() and out.is_dir():
        fail(f"{out} is a folder; --out must be a file path such as {out / 'splits.csv'}")
    table = load_data(dataset_specs(data, data_opt, ""), task)
    if group_duplicates:
        from medxfer.data.dedup import merge_duplicate_patients

        table, changed = merge_duplicate_patients(table)
        typer.echo(f"duplicates: {changed} images now share a patient id with their copies")
    try:
        result = assign_splits(table, val=val, test=test, seed=seed)
    except SplitError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_splits(result, out)
    _print_summary(result, out)


def _print_summary(table: ImageTable, out: Path) -> None:
    from rich.table import Table

    from medxfer.data.splits import split_summary

    summary = split_summary(table)
    view = Table(title=f"splits written to {out}")
    for column in ("split", "images", "patients", *table.class_names):
        view.add_column(column, justify="left" if column == "split" else "right")
    for split_name in summary.index:
        row = summary.loc[split_name]
        cells = [f"{int(row[name])} ({row[f'{name} %']:.1f}%)" for name in table.class_names]
        view.add_row(str(split_name), str(int(row["images"])), str(int(row["patients"])), *cells)
    console().print(view)


def register(app: typer.Typer) -> None:
    app.command("split")(split)
