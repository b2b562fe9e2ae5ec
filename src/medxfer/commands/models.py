"""``medxfer models``: the backbone registry with sizes and the weight sources usable on this machine."""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

from medxfer.commands.common import console, fail


def model_rows(names: list[str] | None = None) -> list[dict[str, object]]:
    """One row per backbone: name, parameters (millions), input size, mean/std, usable weight sources.

    ``usable``: sources that work now without network; ``imagenet``: ``ok``, ``needs network`` or ``-``.
    """
    import torch

    from medxfer.models.backbones import (
        DEFAULT_BACKBONE,
        count_parameters,
        get_spec,
        list_backbones,
        weight_status,
    )

    rows = []
    for name in names or list_backbones():
        spec = get_spec(name)
        with torch.device("meta"):  # parameter counts need shapes only: no memory, no init time
            backbone = spec.builder()
        size, mean, std = spec.preprocess(spec.default_weights)
        status = weight_status(name)
        imagenet = status["imagenet"]
        rows.append(
            {
                "backbone": name,
                "default": name == DEFAULT_BACKBONE,
                "family": spec.family.name,
                "params_m": count_parameters(backbone) / 1e6,
                "input_size": size,
                "mean": mean,
                "std": std,
                "default_weights": spec.default_weights,
                "usable": [s for s, v in status.items() if v == "ok"],
                "imagenet": "ok" if imagenet == "ok" else ("needs network" if "network" in imagenet else "-"),
            }
        )
    return rows


def _norm_label(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    """Short name of a normalisation: ``imagenet`` (torchvision's statistics), ``0.5/0.5``, or the numbers."""
    from torchvision.models import get_model_weights

    tf = get_model_weights("resnet18").DEFAULT.transforms()
    if (tuple(mean), tuple(std)) == (tuple(tf.mean), tuple(tf.std)):
        return "imagenet"
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return f"{mean[0]:g}/{std[0]:g}"
    return "/".join(f"{m:.3g}" for m in mean) + " " + "/".join(f"{x:.3g}" for x in std)


class _ModelsGroup(TyperGroup):
    """``medxfer models NAME...`` (no sub-command word) keeps meaning ``medxfer models list NAME...``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().resolve_command(ctx, args)


models_app = typer.Typer(cls=_ModelsGroup, invoke_without_command=True)


@models_app.callback()
def _models(ctx: typer.Context) -> None:
    """Backbones: `models` or `models list NAME...` lists them; `models summary BACKBONE` shows its layers."""
    if ctx.invoked_subcommand is None:
        models_list(None)


@models_app.command("list")
def models_list(
    backbone: list[str] = typer.Argument(None, help="Backbones to show (default: all registered)."),
) -> None:
    """List backbones, their parameter counts, input sizes and the weight sources that work here now."""
    from rich.table import Table

    try:
        rows = model_rows(backbone or None)
    except ValueError as exc:
        fail(str(exc))
    table = Table(title="medxfer backbones (params: backbone without head)")
    table.add_column("backbone", no_wrap=True)
    table.add_column("params (M)", justify="right")
    table.add_column("input", justify="right")
    table.add_column("mean/std")
    table.add_column("default")
    table.add_column("usable now")
    table.add_column("imagenet")
    for r in rows:
        name = f"{r['backbone']} *" if r["default"] else str(r["backbone"])
        usable = " ".join(str(s).replace(":PATH", "") for s in r["usable"])  # type: ignore[union-attr]
        table.add_row(
            name,
            f"{r['params_m']:.2f}",
            str(r["input_size"]),
            _norm_label(r["mean"], r["std"]),  # type: ignore[arg-type]
            str(r["default_weights"]),
            usable,
            str(r["imagenet"]),
        )
    console().print(table)
    from medxfer.models.weights import list_weight_sources

    typer.echo(f"* default backbone (with packaged weights). --weights {' | '.join(list_weight_sources())}")


@models_app.command("summary")
def models_summary(
    backbone: str = typer.Argument(..., metavar="BACKBONE", help="A backbone: {backbones}."),
    classes: int = typer.Option(2, "--classes", min=2, help="Number of classes of the head."),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Input size in px (default: the backbone's)."
    ),
    head: str = typer.Option("linear", "--head", help="linear or mlp:HIDDEN (e.g. mlp:256)."),
    depth: int = typer.Option(2, "--depth", min=1, help="Nesting depth of the layer table."),
) -> None:
    """Layer table of BACKBONE + head (shapes, parameters, what each stage trains); a run: `summary RUN`."""
    from medxfer.training.summary import backbone_summary

    kind, _, hidden = head.partition(":")
    if kind not in ("linear", "mlp") or (kind == "mlp" and not hidden.isdigit()):
        fail(f"--head {head!r}; use linear or mlp:HIDDEN (e.g. mlp:256)")
    spec = {"kind": kind, "hidden": int(hidden or 0), "dropout": 0.2}
    try:
        typer.echo(backbone_summary(backbone, classes, input_size, spec, depth), nl=False)
    except ValueError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
