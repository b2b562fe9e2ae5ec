"""Fixtures for the public-API tests: one tiny run trained through ``medxfer.train`` (module-wide)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))  # tests/training/tiny.py
from tiny import make_folder_dataset  # noqa: E402

TINY_OVERRIDES = {
    "model.backbone": "custom_cnn",
    "model.weights": "none",
    "model.input_size": 32,
    "train.batch_size": 8,
    "train.threads": 1,
    "stages": [
        {"name": "head", "epochs": 1, "trainable": "head", "lr": 1e-2, "augment": "none"},
        {"name": "ft", "epochs": 1, "trainable": "all", "lr": 3e-3},
    ],
}


@pytest.fixture(scope="session")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("apidata") / "data")


def train_tiny(  # noqa: ANN201
    data: Path, factory: pytest.TempPathFactory, name: str, overrides: dict[str, object] | None = None
):
    """A tiny run of ``data`` trained by ``medxfer.train`` (``overrides``: more config keys), own cache."""
    import medxfer

    mp = pytest.MonkeyPatch()
    mp.setenv("MEDXFER_CACHE", str(factory.mktemp("cache")))
    try:
        return medxfer.train(
            None,
            out=factory.mktemp("runs") / name,
            data=[f"folder:{data}"],
            progress=False,
            overrides={"data.val": 0.25, **TINY_OVERRIDES, **(overrides or {})},
        )
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def api_run(api_data: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A run trained by ``medxfer.train`` with config overrides (read-only for tests)."""
    return train_tiny(api_data, tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def tiny_trainer(api_data: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """``tiny_trainer(name, overrides)``: another tiny run of ``api_data`` (e.g. another ``train.seed``)."""
    return lambda name, overrides=None: train_tiny(api_data, tmp_path_factory, name, overrides)
