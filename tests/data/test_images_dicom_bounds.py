"""Issue 23: DICOM decoding is bounded (deflate bombs, surplus frames, non-finite rescale/window values)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from image_corpus import deflate_bomb, dicom_bytes

from medxfer.data.images import ImageError, read_image_bytes

CAP = 20_000_000  # pixel_cap(224)


def _gray(rows: int = 48, cols: int = 50) -> np.ndarray:
    return (np.arange(rows * cols) % 251).astype(np.uint8).reshape(rows, cols)


def test_deflated_dicom_decodes_like_the_uncompressed_one() -> None:
    gray = _gray()
    out = read_image_bytes(dicom_bytes(gray, "deflate"), "d.dcm")
    np.testing.assert_array_equal(out, read_image_bytes(dicom_bytes(gray), "e.dcm"))


def test_deflate_bomb_is_refused_without_inflating_it() -> None:
    """200 MB of zeros behind a 1x1 header: refused after ~2 MiB inflated (before: all 200 MB, twice)."""
    bomb = deflate_bomb(1, 1, 200_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="decompression bomb") as info:
            read_image_bytes(bomb, "bomb.dcm", max_pixels=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.path == "bomb.dcm" and "inflates to more than" in info.value.reason
    assert peak < 20_000_000, f"peak {peak / 1e6:.0f} MB"


def test_deflated_header_over_the_pixel_cap_is_refused_before_pixels() -> None:
    bomb = deflate_bomb(40_000, 40_000, 50_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="more than max_pixels=20000000"):
            read_image_bytes(bomb, "huge.dcm", max_pixels=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"peak {peak / 1e6:.0f} MB"


def test_surplus_pixel_bytes_are_refused_not_extra_frames() -> None:
    """A 1x1 header carrying a full 112x112 frame: pydicom 3 made it (12544, 1, 1) frames."""
    data = dicom_bytes(np.zeros((1, 1), np.uint8))
    full = dicom_bytes(_gray(112, 112))
    pixel_elem = full[full.rindex(b"\xe0\x7f\x10\x00") :]
    data = data[: data.rindex(b"\xe0\x7f\x10\x00")] + pixel_elem
    data = data.replace(b"\x28\x00\x10\x00US\x02\x00\x70\x00", b"\x28\x00\x10\x00US\x02\x00\x01\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageError, match="shape") as info:
            read_image_bytes(data, "extra.dcm")
    assert "Rows x Columns x SamplesPerPixel x NumberOfFrames" in info.value.reason


def test_frames_the_header_does_not_declare_are_refused() -> None:
    four = np.concatenate([_gray(32, 32)] * 4)  # 128 rows of bytes, header says 32x32 one frame
    data = dicom_bytes(four)
    data = data.replace(b"\x28\x00\x10\x00US\x02\x00\x80\x00", b"\x28\x00\x10\x00US\x02\x00\x20\x00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageError, match=r"shape \(4, 32, 32\)"):
            read_image_bytes(data, "frames.dcm")


def test_declared_multi_frame_gives_its_first_frame() -> None:
    frames = np.stack([_gray(32, 32), 255 - _gray(32, 32), _gray(32, 32) // 2])
    data = dicom_bytes(frames.reshape(96, 32), NumberOfFrames=3)
    data = data.replace(b"\x28\x00\x10\x00US\x02\x00\x60\x00", b"\x28\x00\x10\x00US\x02\x00\x20\x00")
    out = read_image_bytes(data, "multi.dcm")
    np.testing.assert_array_equal(out, read_image_bytes(dicom_bytes(frames[0]), "one.dcm"))


@pytest.mark.parametrize(
    ("values", "keyword"),
    [
        ({"RescaleSlope": "NaN"}, "RescaleSlope"),
        ({"RescaleIntercept": "-Infinity"}, "RescaleIntercept"),
        ({"WindowCenter": ["40", "inf"], "WindowWidth": ["100", "200"]}, "WindowCenter"),
        ({"WindowCenter": "40", "WindowWidth": "nan"}, "WindowWidth"),
    ],
)
def test_non_finite_rescale_or_window_is_refused(values: dict[str, object], keyword: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that NaN is not a valid DS
        data = dicom_bytes(_gray().astype(np.uint16), **values)
        with pytest.raises(ImageError, match=f"{keyword} is .*finite") as info:
            read_image_bytes(data, "lut.dcm")
    assert info.value.path == "lut.dcm"


def test_native_pixel_data_far_longer_than_the_header_says_is_refused_unread() -> None:
    """A 1x1 header followed by 3 MB of pixel bytes: refused from the sizes, before PixelData is read."""
    one = dicom_bytes(np.zeros((1, 1), np.uint8))
    big = dicom_bytes(np.zeros((1500, 2000), np.uint8))
    marker = b"\xe0\x7f\x10\x00"
    data = one[: one.rindex(marker)] + big[big.rindex(marker) :]
    with pytest.raises(ImageError, match="more than the 1 bytes") as info:
        read_image_bytes(data, "long.dcm")
    assert "Rows x Columns x SamplesPerPixel x NumberOfFrames" in info.value.reason
