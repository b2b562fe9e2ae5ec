"""``lr-find --stage K`` tests what stage K trains on: image batches (with its augmentation) for a stage
that trains the backbone, the cached-embedding mode for a head stage (``medxfer.workflow.lr``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import tiny_config

from medxfer.config import ConfigError


@pytest.mark.parametrize(("stage", "mode"), [(0, "embeddings"), (1, "images")])
def test_find_lr_feeds_the_stages_batches(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: int, mode: str
) -> None:
    import medxfer.training.lr_find as lr_find
    from medxfer.workflow.lr import find_lr

    seen = {}

    def fake_range_test(module, data, chosen, out):  # noqa: ANN001, ANN202
        seen["mode"], seen["stage"] = data.stage_mode(0), chosen.name
        return {"suggestion": 1e-3}

    monkeypatch.setattr(lr_find, "lr_range_test", fake_range_test)
    cfg = tiny_config(tiny_data)
    cfg.stages[1].augment = "none"
    assert find_lr(cfg, stage, tmp_path / "lr.png") == {"suggestion": 1e-3}
    assert seen["stage"] == cfg.stages[stage].name
    assert seen["mode"][0] == mode
    if mode == "images":
        assert seen["mode"][1] == "none"  # the stage's own augmentation


def test_find_lr_names_a_stage_that_does_not_exist(tiny_data: Path, tmp_path: Path) -> None:
    from medxfer.workflow.lr import find_lr

    with pytest.raises(ConfigError, match="stage 5: the recipe has stages 0 to 1"):
        find_lr(tiny_config(tiny_data), 5, tmp_path / "lr.png")
