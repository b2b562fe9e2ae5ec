"""Shared by the benchmarks: a run folder to measure and real Kermany images."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("MEDXFER_SHARED_DATA", REPO.parent / "shared" / "data"))


def kermany_paths(n: int) -> list[Path]:
    """``n`` real X-rays, alternating NORMAL / PNEUMONIA, sorted for repeatability."""
    root = shared_data() / "kermany" / "train"
    normal, pneu = sorted((root / "NORMAL").glob("*.jpeg")), sorted((root / "PNEUMONIA").glob("*.jpeg"))
    if not normal or not pneu:
        raise SystemExit(f"no Kermany images under {root} (set MEDXFER_SHARED_DATA)")
    mixed = [p for pair in zip(normal, pneu, strict=False) for p in pair]
    return mixed[:n]


def make_bench_run(run_dir: Path, backbone: str) -> Path:
    """An untrained (random weights, no download) run of ``backbone`` at its own input size."""
    import torch

    from medxfer.models.backbones import build_model, get_spec
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    torch.manual_seed(0)
    spec = get_spec(backbone)
    size, mean, std = spec.preprocess("none")
    model = build_model(backbone, num_classes=2, weights="none").eval()
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone=backbone, weights="none"),
        input_size=int(size),
        mean=tuple(mean),
        std=tuple(std),
        metrics={"note": "benchmark run: random weights"},
    )
    save_model(run_dir, model, info)
    return run_dir
