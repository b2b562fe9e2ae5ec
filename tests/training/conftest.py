"""Fixtures for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import make_folder_dataset


@pytest.fixture()
def tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    return make_folder_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def kermany_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 NORMAL + 80 PNEUMONIA Kermany X-rays (every 7th file by name), copied in Kermany's layout."""
    import shutil

    dest = tmp_path_factory.mktemp("kermany-small")
    for cls in ("NORMAL", "PNEUMONIA"):
        files = sorted((shared_data / "kermany" / "train" / cls).glob("*.jpeg"))[::7][:80]
        assert len(files) == 80, f"expected Kermany images under {shared_data / 'kermany'}"
        (dest / "train" / cls).mkdir(parents=True)
        for f in files:
            shutil.copy(f, dest / "train" / cls / f.name)
    return dest
