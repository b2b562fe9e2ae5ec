"""Fast tune resolves its data through the one data path: the colon recipe's duplicate groups stay apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medxfer.config import load_config


def _copies_folder(root: Path, groups_per_class: int = 8, copies: int = 3) -> dict[str, list[str]]:
    """Folder dataset of two classes whose images come in groups of byte-identical copies (video frames)."""
    rng = np.random.default_rng(0)
    groups: dict[str, list[str]] = {}
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for g in range(groups_per_class):
            img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            names = [str(root / label / f"{label}{g}_{c}.png") for c in range(copies)]
            for name in names:
                Image.fromarray(img).save(name)
            groups[f"{label}{g}"] = names
    return groups


def test_fast_tune_on_colon_recipe_keeps_duplicate_groups_on_one_side(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medxfer.tuning.search import fast_features

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    groups = _copies_folder(tmp_path / "frames")
    overrides = [
        f"data.specs=['folder:{tmp_path / 'frames'}']",
        "model.backbone=custom_cnn",
        "model.weights=none",
        "model.input_size=32",
    ]
    cfg = load_config("colon", overrides)
    assert cfg.data.duplicates == "group"  # the recipe's own rule is what is tested
    fs = fast_features(cfg, None, log=lambda _: None)
    split_of = dict(zip(fs.columns["path"], fs.splits, strict=True))
    assert len(split_of) == 48 and set(split_of.values()) == {"train", "val"}
    straddling = [g for g, paths in groups.items() if len({split_of[p] for p in paths}) > 1]
    assert straddling == []


def test_fast_objective_trains_a_sigmoid_head_like_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """``model.output: sigmoid`` gives one logit and binary cross-entropy in fast tuning, as in a run."""
    import torch

    from medxfer.config import TrainConfig
    from medxfer.features.extract import FeatureSet
    from medxfer.models import backbones
    from medxfer.training import pieces
    from medxfer.tuning.objectives import FastObjective

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = (rng.normal(size=(80, 6)) + y[:, None]).astype(np.float32)
    cols = {
        "path": np.array([f"/x/{i}.png" for i in range(80)]),
        "label_name": np.array(["a", "b"])[y],
        "patient_id": np.array([f"p{i}" for i in range(80)]),
        "split": np.where(np.arange(80) % 4 == 0, "val", "train"),
        "source": np.full(80, "s"),
    }
    heads, losses = [], []
    make_head, loss = backbones.make_head, pieces.classification_loss
    monkeypatch.setattr(backbones, "make_head", lambda *a, **k: heads.append(make_head(*a, **k)) or heads[-1])
    monkeypatch.setattr(pieces, "classification_loss", lambda *a, **k: losses.append(a[2]) or loss(*a, **k))
    cfg = TrainConfig()
    cfg.model.output, cfg.train.monitor = "sigmoid", "val_auc"
    cfg.stages[0].epochs, cfg.stages[0].lr = 10, 0.1
    torch.manual_seed(0)
    fs = FeatureSet(x, y, ["a", "b"], cols)
    scores: list[float] = []
    best = FastObjective(fs, cfg, []).train_head(cfg, lambda epoch, value: scores.append(value))
    assert heads[0][-1].out_features == 1 and set(losses) == {"sigmoid"}
    assert len(scores) == 10 and best == max(scores) and best > 0.8
