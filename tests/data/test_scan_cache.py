"""The cached scan (external-evaluation leak search): same facts as a fresh scan, reused, invalidated."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medxfer.data import scan


def _files(root: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(p)
        paths.append(str(p))
    bad = root / "broken.jpg"
    bad.write_bytes(b"not an image")
    return [*paths, str(bad)]


def test_cached_scan_equals_fresh_scan_and_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    paths = _files(tmp_path)
    fresh = scan.scan_files(paths, progress=False)
    first = scan.scan_files_cached(paths, progress=False)
    assert len(list((tmp_path / "cache" / "scan").glob("*.npz"))) == 1

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(scan, "scan_files", no_reading)
    again = scan.scan_files_cached(paths, progress=False)
    for a, b, c in zip(fresh, first, again, strict=True):
        for f in ("path", "reason", "nbytes", "sha256", "width", "height", "mode", "channels", "dhash"):
            assert getattr(a, f) == getattr(b, f) == getattr(c, f), f
        assert (a.thumb is None and c.thumb is None) or np.array_equal(a.thumb, c.thumb)
        assert a.mean == pytest.approx(c.mean) and a.ok == c.ok
    assert not again[-1].ok and "broken.jpg" in again[-1].path
    # a changed file is a new key: scanned again
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))
    with pytest.raises(AssertionError, match="cache should have answered"):
        scan.scan_files_cached(paths, progress=False)
