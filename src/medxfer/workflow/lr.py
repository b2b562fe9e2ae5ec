"""The LR range test of one stage of a recipe (``medxfer lr-find``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medxfer.config import TrainConfig


def find_lr(cfg: TrainConfig, stage: int, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Run the range test with the trainable set of ``cfg.stages[stage]`` and save the plot to ``out``.

    A stage that trains the backbone needs image batches with that stage's augmentation (not the cached
    embeddings of a head stage), so the data module is told so here. Returns the test's result
    (``suggestion``, rates, losses).
    """
    from medxfer.config import ConfigError
    from medxfer.training.fit import setup
    from medxfer.training.lr_find import lr_range_test
    from medxfer.training.runner import resolve_data

    if not 0 <= stage < len(cfg.stages):
        raise ConfigError(f"stage {stage}: the recipe has stages 0 to {len(cfg.stages) - 1}")
    chosen = cfg.stages[stage]
    with tempfile.TemporaryDirectory() as tmp:
        table = resolve_data(cfg, Path(tmp), resume=False)
    s = setup(cfg, table)
    if chosen.trainable != "head":
        augment = chosen.augment or cfg.train.augment
        s.data.stage_mode = lambda epoch: ("images", augment, -1)
    return lr_range_test(s.module, s.data, chosen, out)
