"""What a pretraining is (``pretrain.json``: its settings, read back by ``--resume``) and what it made
(``card.json`` next to ``weights.safetensors``: the record the weights registry loads with them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medxfer.models.cards import CARD_FILE, CARD_WEIGHTS

SETTINGS_FILE = "pretrain.json"
WEIGHTS_FILE = CARD_WEIGHTS
__all__ = ["CARD_FILE", "SETTINGS_FILE", "WEIGHTS_FILE", "Card", "PretrainSettings"]


@dataclass
class PretrainSettings:
    """Every choice of one pretraining (the CLI flags and :func:`medxfer.pretrain` keywords)."""

    data: list[str]
    backbone: str = "efficientnet_lite0"
    weights: str = "packaged"
    method: str = "byol"
    epochs: int = 10
    input_size: int = 160
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    bn: str = "train"
    precision: str | None = None  # None: bf16-mixed on a GPU, 32-true on a CPU
    channels_last: bool = True
    seed: int = 0
    max_images: int | None = None
    splits: str | None = None  # a splits.csv whose val/test images (and near-copies) are left out
    include_eval: bool = False  # keep them in (a warning names them)
    exclude_paths: list[str] = field(default_factory=list)  # evaluation images of a recipe, left out
    exclude_note: str = ""  # where exclude_paths came from (e.g. "kermany-binary val")
    accelerator: str = "auto"
    workers: int | None = None  # DataLoader workers; None: 0 on a CPU, up to 8 on a GPU
    threads: int | None = None  # torch CPU threads

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> PretrainSettings:
        """Settings saved by an earlier run of the same pretraining (``OUT/pretrain.json``)."""
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Card:
    """The record of pretrained weights: where they came from and how to feed them."""

    backbone: str
    source_weights: str
    method: str
    epochs: int
    batch_size: int
    input_size: int  # the pretraining's views
    model_input_size: int  # the source weights' size: a fine-tune's default (card_preprocess)
    images: int
    images_sha256: str
    excluded: dict[str, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: str
    seed: int
    bn: str
    precision: str
    wall_seconds: float
    images_per_second: float
    final_loss: float | None
    medxfer_version: str
    data: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)
