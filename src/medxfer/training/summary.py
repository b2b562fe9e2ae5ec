"""Model summaries (Keras ``model.summary()`` style): a layer table plus what each training stage trains.

The layer table (output shapes, parameters, trainable) comes from torchinfo; the stage table applies
each recipe stage's ``trainable`` setting with :func:`medxfer.training.stages.apply_trainable` — the same
function training uses — and counts what learns. Used by ``medxfer models summary``, ``medxfer summary``,
``train`` (``RUN/summary.txt``) and :meth:`medxfer.Run.summary`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from medxfer.config import StageConfig

SUMMARY_TXT = "summary.txt"
COLUMNS = ("output_size", "num_params", "trainable")


def layer_table(model: nn.Module, input_size: int, depth: int = 2) -> str:
    """torchinfo's table for one ``(1, 3, S, S)`` input: layer, output shape, parameters, trainable."""
    import torch
    from torchinfo import summary

    was_training = model.training
    model.eval()
    try:
        stats = summary(
            model,
            input_size=(1, 3, input_size, input_size),
            depth=depth,
            col_names=COLUMNS,
            row_settings=("var_names",),
            verbose=0,
            col_width=16,
            device=torch.device("cpu"),
        )
    finally:
        model.train(was_training)
    return str(stats)


def block_rows(model: nn.Module) -> list[dict[str, Any]]:
    """Parameters per backbone block (the units of ``last:K`` unfreezing) and the head."""
    rows = [
        {"part": f"block{i}", "kind": type(b).__name__, "params": sum(p.numel() for p in b.parameters())}
        for i, b in enumerate(model.blocks())
    ]
    rows.append({"part": "head", "kind": "head", "params": sum(p.numel() for p in model.head.parameters())})
    return rows


def stage_rows(model: nn.Module, stages: list[StageConfig]) -> list[dict[str, Any]]:
    """For each stage: its ``trainable`` setting and the parameters that learn in it (of the total)."""
    from medxfer.training.stages import apply_trainable

    saved = [p.requires_grad for p in model.parameters()]
    total = sum(p.numel() for p in model.parameters())
    rows = []
    try:
        for s in stages:
            apply_trainable(model, s)
            n = sum(p.numel() for p in model.parameters() if p.requires_grad)
            rows.append(
                {"stage": s.name, "epochs": s.epochs, "trainable": s.trainable, "params": n, "of": total}
            )
    finally:
        for p, flag in zip(model.parameters(), saved, strict=True):
            p.requires_grad_(flag)
    return rows


def summary_text(
    model: nn.Module,
    input_size: int,
    stages: list[StageConfig] | None = None,
    depth: int = 2,
    title: str = "",
) -> str:
    """The whole summary as plain text: title, layer table, blocks, and the stage table when given."""
    lines = [title] if title else []
    lines.append(layer_table(model, input_size, depth))
    lines.append("\nblocks (units of `trainable: last:K`, input to output)")
    lines += [f"  {r['part']:<8} {r['kind']:<28} {r['params']:>12,}" for r in block_rows(model)]
    if stages:
        lines.append("\nstages (parameters that learn)")
        for r in stage_rows(model, stages):
            share = 100.0 * r["params"] / max(r["of"], 1)
            lines.append(
                f"  {r['stage']:<12} {r['epochs']:>3} ep  trainable={r['trainable']:<8} "
                f"{r['params']:>12,} of {r['of']:,} ({share:.1f}%)"
            )
    return "\n".join(lines) + "\n"


def backbone_summary(
    name: str,
    num_classes: int = 2,
    input_size: int | None = None,
    head: dict[str, Any] | None = None,
    depth: int = 2,
    stages: list[StageConfig] | None = None,
) -> str:
    """Summary of a registered backbone with a fresh head (no weights loaded: shapes and counts only).

    Example::

        print(backbone_summary("efficientnet_lite0", num_classes=3, input_size=224))
    """
    from medxfer.config import default_stages
    from medxfer.models.backbones import build_model, get_spec

    model = build_model(name, num_classes, weights="none", head=head)
    size = input_size or get_spec(name).input_size
    title = f"{name}: {num_classes} classes, input {size} px, head {head or 'linear'}"
    return summary_text(model, size, stages if stages is not None else default_stages(), depth, title)


def run_summary(run_dir: str | os.PathLike[str], depth: int = 2) -> str:
    """Summary of a trained run's model, with the stages of its saved recipe (``config.yaml``)."""
    from medxfer.config import load_config
    from medxfer.runs import load_model

    run = Path(run_dir)
    model, info = load_model(run)
    config = run / "config.yaml"
    stages = load_config(config).stages if config.is_file() else None
    classes = ", ".join(info.class_names)
    if info.members is not None:  # an ensemble (medxfer ensemble): one table per member network
        head = f"{run}: ensemble of {len(info.members)} (mean of their probabilities), classes {classes}"
        sizes = [m.input_size or info.input_size for m in info.members]  # each member's own
        parts = [
            summary_text(
                member, size, stages, depth, f"member {i}: {m.backbone} ({m.weights}), input {size} px"
            )
            for i, (member, m, size) in enumerate(zip(model.members, info.members, sizes, strict=True))  # type: ignore[arg-type]
        ]
        return "\n\n".join([head, *parts])
    net = info.networks[0]
    title = f"{run}: {net.backbone} ({net.weights}), classes {classes}, input {info.input_size} px"
    return summary_text(model, info.input_size, stages, depth, title)
