"""Every recipe in configs/ is a valid config whose data resolve on the real shared copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxfer.config import load_config
from medxfer.data.datasets import load_datasets
from medxfer.models.backbones import get_spec

# Every recipe, demo included (its default data is Kermany, so `medxfer train -c demo` works alone).
CONFIGS = Path(__file__).resolve().parents[1] / "src" / "medxfer" / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


def test_every_task_of_the_source_documents_has_a_recipe() -> None:
    names = {p.stem for p in RECIPES}
    assert {"kermany-binary", "kermany-3class", "covid-vs-normal", "covid-3class", "covid-4class"} <= names
    assert {"vgg16-fc256", "colon"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_its_data_resolve(recipe: Path, shared_data: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("MEDXFER_SHARED_DATA", str(shared_data))
    cfg = load_config(recipe)
    get_spec(cfg.model.backbone)  # a registry backbone
    table = load_datasets(cfg.data.specs, task=cfg.data.task, label_map=cfg.data.label_map)
    assert len(table) > 100 and len(table.class_names) >= 2
    counts = table.table["label_name"].value_counts()
    assert set(counts.index) == set(table.class_names)  # every class has images
