"""Contrast preprocessing (``model.preprocess``): histogram equalisation and CLAHE, checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medxfer.data.cache import prepare_file
from medxfer.data.contrast import clahe, contrast, equalize
from medxfer.data.transforms import prepare_pixels


def test_equalize_is_the_exact_cdf_mapping() -> None:
    img = np.array([[10, 10, 10], [50, 50, 200], [200, 200, 250]], np.uint8)
    # counts 3, 2, 3, 1 -> cdf 3, 5, 8, 9; cdf_min 3, N 9: v -> round(255 * (cdf - 3) / 6)
    expected = np.array([[0, 0, 0], [85, 85, 212], [212, 212, 255]], np.uint8)
    np.testing.assert_array_equal(equalize(img), expected)
    flat = np.full((3, 3), 77, np.uint8)
    np.testing.assert_array_equal(equalize(flat), flat)  # one grey level: nothing to spread


def test_clahe_with_one_tile_clips_and_spreads_the_excess() -> None:
    img = np.zeros((4, 4), np.uint8)
    img[0, 0] = 255
    # 16 pixels, limit max(1, 2 * 16 / 256) = 1: bin 0 keeps 1 of its 15, the 14 left spread over 256 bins
    # lut(0) = 255 * (1 + 14/256) / 16 = 16.81 -> 17; lut(255) = 255 * 16 / 16 = 255
    out = clahe(img, clip_limit=2.0, grid=1)
    assert out[0, 0] == 255 and set(out.ravel()[1:].tolist()) == {17}
    unclipped = clahe(np.array([[0, 0], [100, 200]], np.uint8), clip_limit=0, grid=1)
    np.testing.assert_array_equal(unclipped, [[128, 128], [191, 255]])  # 255 * cdf / N


def test_clahe_corners_use_their_own_tile_and_the_middle_blends() -> None:
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 200  # left tiles all 0, right tiles all 200: each tile's lut maps its value to 255
    img[0, 0] = 100  # one other value in the top-left tile
    out = clahe(img, clip_limit=0, grid=2)
    # top-left tile: 16 pixels, cdf(0) = 15, cdf(100) = 16 -> lut(100) = 255 at its own corner
    assert out[0, 0] == 255 and out[7, 7] == 255
    # a 0 pixel between the two left tiles' centres: top lut(0) = 255 * 15 / 16, bottom lut(0) = 255
    assert out[3, 0] == round(255 * 15 / 16 * 0.625 + 255 * 0.375)
    # a 0 pixel next to the right tiles blends in their lut(0) = 0 (no pixel there is below 200)
    assert out[7, 3] < out[7, 0]


def test_clahe_spreads_a_dim_real_xray_and_colour_is_per_channel(kermany_file: Path) -> None:
    from medxfer.data.images import read_image

    img = prepare_pixels(read_image(kermany_file), 128, "gray")
    dim = (img // 4).astype(np.uint8)  # a quarter of the exposure
    out = contrast(dim, "clahe")
    assert out.shape == dim.shape and out.dtype == np.uint8 and out.std() > 1.3 * dim.std()
    rgb = np.stack([dim, dim // 2, img], axis=2)
    np.testing.assert_array_equal(contrast(rgb, "clahe")[:, :, 1], clahe(dim // 2))
    with pytest.raises(ValueError, match="preprocess='gamma'; valid: none, equalize, clahe"):
        contrast(dim, "gamma")


def test_the_image_cache_keys_on_the_preprocessing(
    kermany_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medxfer.data.images import read_image

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path))
    plain = prepare_file(str(kermany_file), 64, "gray")
    equalised = prepare_file(str(kermany_file), 64, "gray", preprocess="equalize")
    np.testing.assert_array_equal(equalised, equalize(plain))
    assert len(list(tmp_path.rglob("*.npy"))) == 2  # two entries: none and equalize
    np.testing.assert_array_equal(prepare_file(str(kermany_file), 64, "gray"), plain)  # from the cache
    by_hand = contrast(prepare_pixels(read_image(kermany_file), 64, "gray"), "clahe")
    np.testing.assert_array_equal(prepare_file(str(kermany_file), 64, "gray", preprocess="clahe"), by_hand)


@pytest.fixture
def kermany_file(shared_data: Path) -> Path:
    files = sorted((shared_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))
    assert files, "expected Kermany images"
    return files[0]
