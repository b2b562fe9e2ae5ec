"""``medxfer pretrain``: self-supervised adaptation of a backbone to unlabelled images."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import DATA_HELP, fail, quiet_lightning


def pretrain(
    data: list[str] | None = typer.Option(
        None, "--data", "-d", help=DATA_HELP + " Labels are ignored; a plain folder of images works too."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for weights.safetensors + card.json."),
    config: str | None = typer.Option(
        None, "--config", "-c", help="A pretraining recipe (xray-lite0 or a YAML path) instead of the flags."
    ),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a recipe key: --set epochs=20"),
    backbone: str = typer.Option("efficientnet_lite0", help="Backbone: {backbones}."),
    weights: str = typer.Option("packaged", help="Weights to start from: {weights}."),
    method: str = typer.Option("byol", help="byol | simclr | dino (self-supervised objective, via lightly)."),
    epochs: int = typer.Option(10, help="Passes over the images."),
    input_size: int = typer.Option(160, help="Square input size in pixels."),
    batch_size: int = typer.Option(32, help="Images per batch (two views each)."),
    lr: float = typer.Option(3e-4, help="Peak AdamW learning rate (warm-up, then cosine)."),
    bn: str = typer.Option(
        "train", help="BatchNorm: train (follow the new images) | frozen (keep the source's)."
    ),
    precision: str | None = typer.Option(
        None,
        help="Lightning precision (bf16-mixed, 32-true) or auto-bf16 (bf16 where the CPU has it natively);"
        " default: bf16 on a GPU, fp32 on a CPU.",
    ),
    channels_last: bool = typer.Option(True, help="NHWC batches (faster convolutions on CPUs and GPUs)."),
    splits: Path | None = typer.Option(
        None, help="splits.csv whose val/test images (and near-copies) stay out."
    ),
    include_eval: bool = typer.Option(
        False, help="Keep the --splits evaluation images in (a warning names them)."
    ),
    seed: int = typer.Option(0, help="Seed of the image order, the views and --max-images."),
    max_images: int | None = typer.Option(None, help="Use at most N images (a seeded sample)."),
    accelerator: str = typer.Option("auto", help="cpu | gpu | auto."),
    workers: int | None = typer.Option(
        None, help="DataLoader workers (default: 0 on a CPU, up to 8 on a GPU)."
    ),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    resume: bool = typer.Option(False, help="Continue the killed pretraining in --out (its saved settings)."),
    quiet: bool = typer.Option(False, help="No progress bar, no Lightning tips or warnings."),
) -> None:
    """Adapt a backbone to your images without labels (BYOL/SimCLR/DINO); use it with --weights file:OUT."""
    from medxfer.api import pretrain as api_pretrain
    from medxfer.data.datasets import DatasetError
    from medxfer.data.images import ImageError
    from medxfer.models.weights import WeightsError

    if not data and not resume and not config:
        fail(
            "give the images with --data LAYOUT:PATH, or a recipe with --config "
            "(or --resume to continue --out)"
        )
    if config and data:
        fail("give --data (with the flags) or --config (with --set), not both")
    try:
        with quiet_lightning(quiet):
            result = (
                _run(config, sets or [], out, resume, quiet)
                if config
                else api_pretrain(
                    data,
                    out,
                    backbone=backbone,
                    weights=weights,
                    method=method,
                    epochs=epochs,
                    input_size=input_size,
                    batch_size=batch_size,
                    lr=lr,
                    bn=bn,
                    precision=precision,
                    channels_last=channels_last,
                    seed=seed,
                    max_images=max_images,
                    splits=splits,
                    include_eval=include_eval,
                    accelerator=accelerator,
                    workers=workers,
                    threads=threads,
                    resume=resume,
                    progress=not quiet,
                )
            )
    except (DatasetError, ImageError, WeightsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    card = result.card
    typer.echo(
        f"pretrained {card['backbone']} ({card['method']}, {card['epochs']} epochs, {card['images']} images, "
        f"{card['wall_seconds']:.0f} s): --weights file:{result.out}"
    )


def _run(config: str, sets: list[str], out: Path, resume: bool, quiet: bool):  # noqa: ANN202
    from medxfer.pretraining.entry import pretrain_recipe

    return pretrain_recipe(config, out, sets=sets, resume=resume, progress=not quiet)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
