"""``medxfer train`` and ``medxfer lr-find``."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import DATA_HELP, fail, quiet_lightning


def _config(
    config: Path | None,
    data: list[str] | None,
    task: str | None,
    splits: Path | None,
    backbone: str | None,
    weights: str | None,
    sets: list[str] | None,
    scale: dict,
    epochs: int | None = None,
    allow_leaks: bool = False,
):  # noqa: ANN202
    """The flags as :func:`medxfer.workflow.configuring.build_config` arguments (its policies apply)."""
    from medxfer.config import ConfigError
    from medxfer.workflow.configuring import build_config

    hardware = [f"train.{key}={value}" for key, value in scale.items() if value is not None]
    try:
        return build_config(
            config,
            data=data,
            task=task,
            splits=splits,
            backbone=backbone,
            weights=weights,
            epochs=epochs,
            allow_leaks=allow_leaks,
            sets=[*(sets or []), *hardware],
            log=_note,
        )
    except ConfigError as exc:
        fail(str(exc))


def _note(message: str) -> None:
    warning = message.startswith("warning")
    typer.secho(message, fg=typer.colors.YELLOW if warning else None, err=warning)


def train(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML recipe: a path or a recipe name (covid-3class, kermany-binary, ...).",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder to create, e.g. runs/NAME."),
    data: list[str] | None = typer.Option(None, "--data", "-d", help=DATA_HELP),
    task: str | None = typer.Option(None, help="Label task, e.g. kermany-binary, covid-3class."),
    splits: Path | None = typer.Option(None, help="Use this splits.csv instead of making one."),
    backbone: str | None = typer.Option(None, help="Backbone: {backbones} (see `medxfer models`)."),
    weights: str | None = typer.Option(None, help="default | {weights} (default: the backbone's own)."),
    sets: list[str] | None = typer.Option(
        None, "--set", help="Override a config key: --set train.batch_size=16"
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs of every stage (quick try: --epochs 1)."
    ),
    allow_leaks: bool = typer.Option(
        False, "--allow-leaks", help="Train even if duplicate images straddle the splits (not advised)."
    ),
    resume: Path | None = typer.Option(None, help="Continue the killed run in this folder."),
    overwrite: bool = typer.Option(False, help="Replace the run already in --out."),
    devices: str | None = typer.Option(None, help="Lightning devices (e.g. 2)."),
    strategy: str | None = typer.Option(None, help="Lightning strategy (e.g. ddp)."),
    num_nodes: int | None = typer.Option(None, help="Lightning num_nodes."),
    accelerator: str | None = typer.Option(None, help="cpu | gpu | auto."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    verbose: bool = typer.Option(False, help="Also Lightning's tips, hardware lines and library warnings."),
) -> None:
    """Train a classifier in stages (frozen backbone, then fine-tuning) into a run folder."""
    from medxfer.api import train as api_train
    from medxfer.data.datasets import DatasetError
    from medxfer.data.images import ImageError
    from medxfer.models.weights import WeightsError
    from medxfer.training.runner import RunExistsError

    if resume is None and out is None:
        fail("give --out runs/NAME (or --resume runs/NAME to continue a run)")
    scale = {"devices": devices, "strategy": strategy, "num_nodes": num_nodes, "accelerator": accelerator}
    cfg = None
    if not resume:
        cfg = _config(config, data, task, splits, backbone, weights, sets, scale, epochs, allow_leaks)
    try:
        with quiet_lightning(not verbose):
            run = api_train(
                cfg,
                resume or out,
                resume=resume is not None,
                overwrite=overwrite,
                progress=not quiet,
                verbose=verbose,
            )
    except (RunExistsError, DatasetError, ImageError, WeightsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    result = run.train_result
    typer.echo(f"run folder: {run.path}  ({result.seconds:.0f} s, {result.images_per_second:.1f} img/s)")


def lr_find(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML recipe."),
    out: Path = typer.Option(Path("lr_find.png"), "--out", "-o", help="Plot file to write."),
    data: list[str] | None = typer.Option(None, "--data", "-d", help=DATA_HELP),
    task: str | None = typer.Option(None, help="Label task."),
    splits: Path | None = typer.Option(None, help="splits.csv to use."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key."),
    stage: int = typer.Option(0, help="Which stage's trainable set to test."),
) -> None:
    """LR range test for one stage of a recipe: saves the loss-vs-rate plot, prints the suggestion."""
    from medxfer.config import ConfigError
    from medxfer.workflow.lr import find_lr

    cfg = _config(config, data, task, splits, None, None, sets, {})
    try:
        result = find_lr(cfg, stage, out)
    except ConfigError as exc:
        fail(str(exc))
    typer.echo(f"suggested lr: {result['suggestion']:.2e}  (plot: {out})")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("lr-find")(lr_find)
