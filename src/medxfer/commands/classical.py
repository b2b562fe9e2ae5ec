"""``medxfer features`` (frozen-network embeddings) and ``medxfer classical`` (scikit-learn on them)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from medxfer.commands.common import DATA_HELP, fail, load_data


def _encoder(
    run: Path | None, backbone: str | None, weights: str, input_size: int | None, channels: str, paths
):  # noqa: ANN001, ANN202
    from medxfer.data.resolve import CHANNELS, resolve_channels
    from medxfer.features.extract import backbone_meta, run_meta

    if (run is None) == (backbone is None):
        fail("give either a RUN folder or --backbone NAME (not both)")
    if run is not None:
        try:
            return run_meta(run)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
    from medxfer.models.backbones import get_spec

    try:
        get_spec(str(backbone))
    except ValueError as exc:  # names the valid backbones
        fail(str(exc))
    if channels not in CHANNELS:
        fail(f"--channels {channels!r}; valid: {', '.join(CHANNELS)}")
    channels = resolve_channels(channels, paths)
    try:
        return backbone_meta(backbone, weights, input_size, channels)  # type: ignore[arg-type]
    except (ValueError, RuntimeError) as exc:
        fail(f"backbone {backbone} with weights {weights!r}: {exc}")


def features(
    run: Path | None = typer.Argument(None, help="A trained run folder whose network embeds the images."),
    backbone: str | None = typer.Option(None, help="Or a backbone: {backbones} (see `medxfer models`)."),
    weights: str = typer.Option("packaged", help="{weights} (with --backbone)."),
    data: list[str] = typer.Option(..., "--data", "-d", help=DATA_HELP),
    task: str | None = typer.Option(None, help="Label task, e.g. kermany-binary."),
    splits: Path | None = typer.Option(None, help="A splits.csv giving train/val/test."),
    out: Path = typer.Option(..., "--out", "-o", help="Features file to write (.npz)."),
    input_size: int | None = typer.Option(None, help="Input size (default: the weights' own)."),
    channels: str = typer.Option("auto", help="auto | gray | rgb (with --backbone)."),
    batch_size: int = typer.Option(64, help="Images per forward pass."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a busy 2-core machine)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every embedding."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Pooled embedding of every image by a frozen network, saved with labels, patients and splits."""
    import torch

    from medxfer.data.images import ImageError
    from medxfer.features.extract import extract_features, save_features

    if out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    if threads < 1:
        fail(f"--threads {threads}: give 1 or more")
    torch.set_num_threads(threads)
    table = load_data(data, task, splits)
    meta = _encoder(run, backbone, weights, input_size, channels, list(table.table["path"]))
    start = time.perf_counter()
    try:
        fs = extract_features(table, meta, batch_size=batch_size, use_cache=not no_cache)
    except ImageError as exc:
        fail(f"{exc} (run `medxfer check --quarantine` to set unreadable files aside)")
    save_features(fs, out)
    secs = time.perf_counter() - start
    n_new = fs.meta["computed_rows"]
    rate = f", {n_new / secs:.1f} img/s" if n_new and secs > 0 else ""
    typer.echo(
        f"{out}: {len(fs)} x {fs.features.shape[1]} features ({fs.meta['cached_rows']} cached, "
        f"{n_new} computed) in {secs:.1f} s{rate}"
    )


def classical(
    features_file: Path = typer.Option(..., "--features", "-f", help="A file from `medxfer features`."),
    classifiers: str = typer.Option("all", help="Comma list of {classifiers}, or all (every one)."),
    pca: int | None = typer.Option(
        None, help="PCA components for every classifier (0 = off; default per classifier)."
    ),
    folds: int = typer.Option(3, help="Patient-grouped CV folds on the train split."),
    seed: int = typer.Option(0, help="Seed of CV folds and classifiers."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (table, plot, best pipeline)."),
    overwrite: bool = typer.Option(False, help="Write into an --out that already holds results."),
) -> None:
    """Tune scikit-learn classifiers on frozen features (grouped CV), compare them, save the best."""
    from medxfer.features.classical import INFO_FILE, run_classical
    from medxfer.features.classifiers import parse_classifiers
    from medxfer.features.extract import load_features

    try:
        names = parse_classifiers(classifiers)
        fs = load_features(features_file)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if (out / INFO_FILE).exists() and not overwrite:
        fail(f"{out} already holds classical results; pass --overwrite or choose another --out")
    if folds < 2:
        fail(f"--folds {folds}: need at least 2")
    start = time.perf_counter()
    try:
        run_classical(fs, names, out, pca=pca, folds=folds, seed=seed, log=typer.echo)
    except ValueError as exc:
        fail(f"{features_file}: {exc}")
    typer.echo((out / "comparison.md").read_text())
    typer.echo(f"best pipeline: {out / 'model.skops'}  ({time.perf_counter() - start:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add ``features`` and ``classical`` to the CLI."""
    app.command("features")(features)
    app.command("classical")(classical)
