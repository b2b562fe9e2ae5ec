"""``medxfer check``: read every image once and report leaks, duplicates, unreadable files, shortcuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from medxfer.commands.common import DATA_HELP, data_option, dataset_specs, fail, load_data
from medxfer.commands.common import console as make_console

if TYPE_CHECKING:
    from medxfer.data.check import CheckReport


def parse_mask(values: list[str] | None) -> list[list[float]]:
    """Parse ``--mask x0,y0,x1,y1`` options (relative 0..1) into boxes; bad values -> exit 2."""
    boxes = []
    for value in values or []:
        try:
            box = [float(v) for v in value.split(",")]
        except ValueError:
            box = []
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            fail(f"--mask {value!r}: expected x0,y0,x1,y1 relative to the image, 0 <= x0 < x1 <= 1 (same y)")
        boxes.append(box)
    return boxes


def check(
    data: list[str] = typer.Argument(None, help=DATA_HELP),
    data_opt: list[str] | None = data_option(),
    task: str | None = typer.Option(None, help="Label task, e.g. kermany-binary, covid-3class."),
    splits: Path | None = typer.Option(None, "--splits", help="splits.csv to apply (from medxfer split)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full report as JSON here."),
    quarantine: Path | None = typer.Option(
        None, help="Move unreadable files into this folder (manifest kept)."
    ),
    restore: Path | None = typer.Option(
        None, help="Put files quarantined in this folder back, then stop (exit 1 if any stay there)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --restore: list what would move; move nothing."
    ),
    probe: bool = typer.Option(
        False, "--probe", help="Also run the shortcut probe (grouped CV, ~1 min/10k)."
    ),
    mask: list[str] | None = typer.Option(None, "--mask", help="Box x0,y0,x1,y1 (relative) to black out."),
    min_size: int = typer.Option(224, "--min-size", help="Flag images whose shorter side is below this."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Check DATA: counts, unreadable files, duplicates, patient leaks, source confounding, shortcuts."""
    if restore is not None:
        _restore(restore, dry_run)
        return
    data = dataset_specs(data, data_opt, ", or --restore DIR")
    if min_size < 1:
        fail(f"--min-size must be a positive number of pixels, got {min_size}")
    boxes = parse_mask(mask)
    if json_out is not None and json_out.is_dir():
        fail(f"--json {json_out} is a folder; give a file path such as {json_out / 'check.json'}")
    from medxfer.data.check import run_check
    from medxfer.io import atomic_write_text

    table = load_data(data, task, splits)
    report = run_check(table, min_size=min_size, probe=probe, progress=not quiet, mask_boxes=boxes)
    if quarantine is not None and report.unreadable:
        _quarantine(report, data, quarantine)
    render(report)
    from medxfer.data.leaks import patient_note

    note = patient_note(table)
    if note:
        typer.echo(note)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2, default=_json_default))
        typer.echo(f"report written to {json_out}")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _quarantine(report: CheckReport, specs: list[str], folder: Path) -> None:
    """Move the unreadable files under ``folder``; a file that cannot move is a ``not moved`` line."""
    import os

    from medxfer.data.datasets import parse_spec
    from medxfer.data.quarantine import quarantine_files

    # the dataset: its folders (a CSV's folder) and the folders its unreadable files are listed in
    paths = [u["path"] for u in report.unreadable]
    roots = [parse_spec(spec)[1].absolute() for spec in specs]
    roots = [r.parent if r.is_file() else r for r in roots] + [Path(os.path.abspath(p)).parent for p in paths]
    moved, problems = quarantine_files(paths, folder, root=os.path.commonpath(roots))
    report.settings["quarantined"] = moved
    typer.echo(f"moved {len(moved)} unreadable file(s) to {folder} (undo: --restore {folder})")
    for problem in problems:
        typer.secho(problem, fg=typer.colors.YELLOW, err=True)


def _restore(folder: Path, dry_run: bool) -> None:
    from medxfer.data.quarantine import restore_files

    try:
        restored, problems = restore_files(folder, dry_run=dry_run)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if dry_run:
        for entry in restored:
            typer.echo(f"would restore {folder / entry['stored']} -> {entry['original']}")
        typer.echo(f"{len(restored)} file(s) would be restored from {folder} (dry run: nothing moved)")
    else:
        typer.echo(f"restored {len(restored)} file(s) from {folder}")
    for problem in problems:
        typer.secho(f"not restored: {problem}", fg=typer.colors.YELLOW, err=True)
    if problems:
        typer.secho(f"{len(problems)} file(s) left in {folder}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)


def render(report: CheckReport) -> None:
    """Print the report as rich tables (counts, findings, probe, warnings)."""
    from rich.table import Table

    console = make_console()
    counts = report.counts
    table = Table(title=f"{report.num_images} images ({report.seconds:.1f} s)")
    sources = sorted(counts["per_source"])
    splits = sorted(counts["per_split"])
    for col in ["class", "images", *sources, *splits]:
        table.add_column(col, justify="left" if col == "class" else "right")
    for cls, n in counts["per_class"].items():
        by_src = counts["class_by_source"].get(cls, {})
        by_split = counts["class_by_split"].get(cls, {})
        cells = [str(by_src.get(s, 0)) for s in sources] + [str(by_split.get(s, 0)) for s in splits]
        table.add_row(cls, str(n), *cells)
    console.print(table)
    findings = Table(title="findings")
    findings.add_column("check")
    findings.add_column("count", justify="right")
    dup = report.duplicates
    rows = [
        ("unreadable files", len(report.unreadable)),
        ("exact duplicate groups", sum(g["kind"] == "exact" for g in dup)),
        ("near duplicate groups", sum(g["kind"] == "near" for g in dup)),
        ("  crossing classes", sum(g["cross_class"] for g in dup)),
        ("  crossing splits", sum(g["cross_split"] for g in dup)),
        ("  crossing sources", sum(g["cross_source"] for g in dup)),
        ("patients in >1 split", len(report.patient_leaks)),
        ("classes confounded with a source", len(report.source_confounding)),
        (f"smaller than {report.settings.get('min_size')} px", len(report.small_images)),
        ("non-frontal views", len(report.non_frontal)),
    ]
    for name, n in rows:
        findings.add_row(name, f"[bold red]{n}[/]" if n and "crossing" in name else str(n))
    console.print(findings)
    for item in report.unreadable[:20]:
        console.print(f"[red]unreadable[/] {item['path']}: {item['reason']}")
    if report.shortcut_probe:
        _render_probe(console, report.shortcut_probe)
    for warning in report.warnings:
        console.print(f"[bold yellow]WARNING[/] {warning}")
    if not report.warnings:
        console.print("[green]no warnings[/]")


def _render_probe(console: Any, probe: dict[str, Any]) -> None:
    from rich.table import Table

    if probe.get("skipped"):
        console.print(f"shortcut probe skipped: {probe['skipped']}")
        return
    table = Table(title=f"shortcut probe ({probe['folds']}-fold patient-grouped CV)")
    for col in ("probe", "kind", "bal. acc", "chance", "macro AUC", "Cramér V", "permuted", "warn"):
        table.add_column(col, justify="left" if col in ("probe", "kind") else "right")
    for s in probe["scores"]:
        perm = s["permuted_association"] if s["kind"] == "pattern" else s["permuted_balanced_accuracy"]
        assoc = "" if s["association"] is None else f"{s['association']:.2f}"
        table.add_row(
            s["name"],
            s["kind"],
            "" if s["kind"] == "pattern" else f"{s['balanced_accuracy']:.2f}",
            f"{s['chance']:.2f}",
            "" if s["kind"] == "pattern" else f"{s['macro_auc']:.2f}",
            assoc,
            "" if perm is None else f"{perm:.2f}",
            "[bold red]YES[/]" if s["warn"] else "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the CLI."""
    app.command("check")(check)
