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


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def browser():  # noqa: ANN201
    """Debian's headless Chromium driven by Playwright (its own browser download does not work offline).

    ``$MEDXFER_CHROMIUM`` overrides the path. Missing browser -> failure in CI, skip elsewhere.
    """
    import shutil

    exe = os.environ.get("MEDXFER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    missing = [] if Path(exe).is_file() else [exe]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("playwright (pip)")
    if missing:
        message = f"browser test needs {', '.join(missing)} (Debian package `chromium`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def recipe_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$MEDXFER_SHARED_DATA`` pointed at empty stand-ins for the recipes' data folders.

    For tests that only load a shipped recipe's config (its data paths must exist, nothing is read):
    they then run without the real images, instead of failing where ``../shared/data`` is absent.
    """
    root = tmp_path_factory.mktemp("recipe-data")  # not tmp_path: a test may assert that stays empty
    names = ("kermany", "covid19-radiography", "covid/ieee8023", "covid/actualmed", "covid/figure1", "colon")
    for name in names:
        (root / name).mkdir(parents=True)
    monkeypatch.setenv("MEDXFER_SHARED_DATA", str(root))
    return root
