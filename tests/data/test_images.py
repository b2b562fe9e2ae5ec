"""Image decoding: every format to uint8 (H, W) / (H, W, 3), every failure an ImageError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medxfer.data.images import IMAGE_EXTENSIONS, ImageError, read_image, read_image_bytes


def _dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    **extra: object,
) -> Path:
    from image_corpus import dicom_bytes

    path.write_bytes(dicom_bytes(pixels, photometric=photometric, preamble=preamble, **extra))
    return path


def test_extensions_are_lowercase_with_dot() -> None:
    assert {".png", ".jpg", ".jpeg", ".dcm", ".tif", ".bmp"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_gray_png_exact(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(arr).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.dtype == np.uint8 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, arr)
    assert read_image(tmp_path / "g.png", channels="rgb").shape == (3, 4, 3)


def test_16bit_png_minmax_not_clipped(tmp_path: Path) -> None:
    arr = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    # (v - 1000) / 4000 * 255 -> 0, 63.75, 127.5, 255 (round half to even)
    np.testing.assert_array_equal(out, np.array([[0, 64], [128, 255]], dtype=np.uint8))


def test_rgb_equal_channels_auto_gray(tmp_path: Path) -> None:
    gray = np.full((4, 5), 77, dtype=np.uint8)
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(tmp_path / "rgb.png")
    assert read_image(tmp_path / "rgb.png").shape == (4, 5)
    assert read_image(tmp_path / "rgb.png", channels="rgb").shape == (4, 5, 3)


def test_colour_kept_and_gray_luma(tmp_path: Path) -> None:
    arr = np.zeros((2, 2, 3), dtype=np.uint8)
    arr[..., 0] = 200
    Image.fromarray(arr).save(tmp_path / "c.png")
    out = read_image(tmp_path / "c.png")
    assert out.shape == (2, 2, 3) and out[0, 0, 0] == 200
    assert read_image(tmp_path / "c.png", channels="gray")[0, 0] == 60  # round(200 * 0.299)


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    arr = np.zeros((1, 3, 4), dtype=np.uint8)
    arr[0, :, :3] = [[255, 0, 0], [0, 255, 0], [100, 100, 100]]
    arr[0, :, 3] = [255, 0, 128]
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png", channels="rgb")
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [0, 0, 0], [50, 50, 50]])


def test_la_and_palette(tmp_path: Path) -> None:
    la = np.zeros((1, 2, 2), dtype=np.uint8)
    la[0] = [[200, 255], [200, 0]]
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), [[200, 0]])
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], [[0, 0, 0], [10, 20, 30]])


def test_jpeg_exif_orientation(tmp_path: Path) -> None:
    arr = np.zeros((20, 40), dtype=np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20)
    assert out[5, 10] > 200 and out[35, 10] < 50  # left half is now the top half


def test_tiff_bmp(tmp_path: Path) -> None:
    arr = (np.arange(6, dtype=np.uint8) * 40).reshape(2, 3)
    for suffix in (".tif", ".bmp"):
        Image.fromarray(arr).save(tmp_path / f"x{suffix}")
        np.testing.assert_array_equal(read_image(tmp_path / f"x{suffix}"), arr)
    arr16 = np.array([[0, 65535]], dtype=np.uint16)
    Image.fromarray(arr16).save(tmp_path / "x16.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "x16.tif"), [[0, 255]])


def test_read_image_bytes_matches_file(tmp_path: Path) -> None:
    arr = np.arange(16, dtype=np.uint8).reshape(4, 4)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    np.testing.assert_array_equal(read_image_bytes(buf.getvalue(), "up.png"), arr)
    with pytest.raises(ImageError, match="up.png: empty file"):
        read_image_bytes(b"", "up.png")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, I am text\n", "not an image: the file contains text"),
        (b"\x00\x01\x02\xff" * 10, "not an image: unrecognised format"),
    ],
)
def test_bad_files_raise(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert info.value.path == str(path)
    assert info.value.reason.startswith(reason)
    assert str(info.value).startswith(f"{path}: ")


def test_truncated_and_missing(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        tmp_path / "full.png"
    )
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt PNG"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="auto, gray, rgb"):
        read_image(tmp_path / "full.png", channels="bgr")


def test_decompression_bomb_refused(tmp_path: Path) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="10000 pixels, more than max_pixels=9999"):
        read_image(tmp_path / "big.png", max_pixels=9999)
    _dicom(tmp_path / "big.dcm", np.zeros((100, 100), dtype=np.uint8))
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(tmp_path / "big.dcm", max_pixels=9999)


def test_dicom_monochrome2_16bit_minmax(tmp_path: Path) -> None:
    pixels = np.array([[100, 200], [300, 500]], dtype=np.uint16)
    out = read_image(_dicom(tmp_path / "a.dcm", pixels))
    np.testing.assert_array_equal(out, [[0, 64], [128, 255]])


def test_dicom_monochrome1_inverted(tmp_path: Path) -> None:
    pixels = np.array([[100, 200], [300, 500]], dtype=np.uint16)
    out = read_image(_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(out, [[255, 191], [127, 0]])


def test_dicom_rescale_and_window(tmp_path: Path) -> None:
    pixels = np.array([[0, 1000], [1024, 2048]], dtype=np.uint16)
    # HU = raw - 1024; window centre 0.5 width 2 -> LINEAR: below -0.5 -> 0, above 0.5 -> max
    path = _dicom(
        tmp_path / "ct.dcm",
        pixels,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=0.5,
        WindowWidth=2,
        BitsStored=12,
    )
    np.testing.assert_array_equal(read_image(path), [[0, 0], [128, 255]])


def test_dicom_detected_by_preamble_without_suffix(tmp_path: Path) -> None:
    pixels = np.array([[0, 255]], dtype=np.uint8)
    path = _dicom(tmp_path / "noext", pixels)
    assert (path.read_bytes()[128:132]) == b"DICM"
    np.testing.assert_array_equal(read_image(path), [[0, 255]])


def test_dicom_without_pixels_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageError, match=r"junk\.dcm: "):
        read_image(tmp_path / "junk.dcm")


def test_dicom_compressed_rle(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.uid import RLELossless

    pixels = np.array([[10, 20], [30, 40]], dtype=np.uint16)
    path = _dicom(tmp_path / "c.dcm", pixels)
    ds = dcmread(path)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(tmp_path / "rle.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm"), [[0, 85], [170, 255]])


def test_dicom_unsupported_syntax_names_it(tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID

    path = _dicom(tmp_path / "c.dcm", np.zeros((2, 2), dtype=np.uint8))
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2, no decoder
    ds.PixelData = encapsulate([b"\x00" * 8])
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(ImageError, match="MPEG2"):
        read_image(tmp_path / "mpeg.dcm")


def test_real_images_decode(shared_data: Path) -> None:
    kermany = sorted((shared_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[:3]
    for path in kermany:
        img = read_image(path)
        assert img.dtype == np.uint8 and img.shape == (224, 224)  # RGB JPEG of an X-ray -> gray
    colon = sorted((shared_data / "colon" / "polyp").glob("*.jpg"))[0]
    rgb = read_image(colon)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) == 256
    covid = sorted((shared_data / "covid" / "ieee8023" / "images").glob("*.jpg"))[0]
    assert min(read_image(covid, channels="rgb").shape[:2]) == 256
