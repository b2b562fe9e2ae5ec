"""Shared pytest fixtures. Add fixtures below; do not rewrite others' fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the real images live: ``$MEDXFER_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("MEDXFER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder; missing -> failure in CI (CI=true), skip elsewhere."""
    path = shared_data_dir()
    if not path.is_dir():
        message = f"shared data folder {path} not found (set MEDXFER_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
