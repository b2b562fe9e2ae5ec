"""Fixtures for the inference tests: a tiny trained-looking run folder and a few real X-rays."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_helpers import make_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide run folder (binary normal/pneumonia, 64 px). Tests must not write into it."""
    import torch

    torch.set_num_threads(1)
    return make_run(tmp_path_factory.mktemp("run") / "tiny")


@pytest.fixture(scope="session")
def kermany_paths(shared_data: Path) -> list[Path]:
    """Six real Kermany X-rays (3 normal, 3 pneumonia), sorted for determinism."""
    root = shared_data / "kermany" / "train"
    paths = sorted((root / "NORMAL").glob("*.jpeg"))[:3] + sorted((root / "PNEUMONIA").glob("*.jpeg"))[:3]
    assert len(paths) == 6, f"expected Kermany images under {root}"
    return paths
