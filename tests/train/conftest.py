"""Fixtures for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import make_folder_dataset


@pytest.fixture()
def tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    return make_folder_dataset(tmp_path / "data")
