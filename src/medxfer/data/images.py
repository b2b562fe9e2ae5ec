"""Decode any supported image file into one pixel convention.

Convention (everything downstream relies on it): ``read_image`` returns a ``numpy.uint8`` array,
shape ``(H, W)`` for grayscale or ``(H, W, 3)`` for colour (RGB order). With ``channels="auto"``
an image whose colour channels are all equal (e.g. an X-ray saved as RGB JPEG) comes back as
``(H, W)``. 16-bit and DICOM data are windowed (VOI LUT / window, else min-max over the pixel
range) to the full 0..255 range, so nothing is clipped to white or black.

Other rules, chosen once:

- Alpha (RGBA, LA, palette with transparency) is composited onto black: a fully transparent
  pixel is black whatever colour it stores, an opaque one keeps its colour.
- JPEG (and any file with EXIF) is turned upright by its EXIF orientation tag.
- Multi-frame files (TIFF pages, GIF, multi-frame DICOM) give their first frame. A DICOM whose decoded
  array does not match Rows x Columns x SamplesPerPixel x NumberOfFrames (surplus or missing pixel bytes)
  is refused.
- A constant 16-bit / DICOM image (max == min) becomes all zeros.
- The format is sniffed from the content first (a JPEG named ``.dcm`` decodes as JPEG); DICOM is
  recognised by the ``DICM`` marker at byte 128, or by suffix (``.dcm``, ``.dicom``) when no other
  format's signature matches; rescale slope/intercept (modality LUT) is applied, then the VOI LUT or
  window, then MONOCHROME1 is inverted so that bone is always bright.
- Images with more than ``max_pixels`` pixels are refused before decoding (decompression bombs);
  :func:`pixel_cap` derives a cap from a model's input size. 16-bit / float / DICOM data are mapped
  to uint8 a block of rows at a time, so a decode never holds a float64 copy of the whole image.
- DICOM is read bounded (:mod:`medxfer.data.dicom`): the header first, the size checked against
  ``max_pixels`` before any pixel data is read or inflated; a deflated data set is inflated only as far
  as its header's pixels need (a deflate bomb is refused); non-finite rescale / window values are refused.

The contract: every failure of any decoder (Pillow, pydicom, numpy) raises :class:`ImageError`
naming the file and the reason; nothing else escapes (``tests/data/test_images_fuzz.py``).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm", ".dicom"}
)
DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm", ".dicom"})
DEFAULT_MAX_PIXELS = 100_000_000
MIN_PIXEL_CAP = 16_000_000  # a 4000 x 4000 X-ray is always accepted, whatever the model's input
PIXEL_CAP_SIDE_FACTOR = 20  # an image side up to 20x the model's input side
CHANNELS = ("auto", "gray", "rgb")
CHUNK_PIXELS = 1 << 18  # rows are converted to uint8 about 256k pixels (2 MB of float64) at a time
# Leading bytes of the raster formats Pillow reads here (PNG, JPEG, TIFF x2, BMP, GIF, WebP/RIFF).
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8", b"RIFF")


class ImageError(ValueError):
    """An image that cannot be decoded; ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_image(
    path: str | os.PathLike[str], channels: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read an image file as ``uint8`` ``(H, W)`` gray or ``(H, W, 3)`` RGB.

    Args:
        path: PNG, JPEG, TIFF, BMP, GIF, WebP or DICOM file.
        channels: ``"auto"`` (gray when the colour channels are equal), ``"gray"`` or ``"rgb"``.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).

    Returns:
        The decoded pixels.

    Raises:
        ImageError: the file is missing, empty, truncated, not an image, too large or undecodable.

    Example:
        >>> img = read_image("train/NORMAL/IM-0115-0001.jpeg")  # doctest: +SKIP
        >>> img.shape, img.dtype  # doctest: +SKIP
        ((224, 224), dtype('uint8'))
    """
    _check_channels(channels)
    name = str(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ImageError(name, "file not found") from None
    except OSError as exc:
        raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
    if os.path.isdir(path):
        raise ImageError(name, "is a folder, not an image file")
    if size == 0:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            return _decode(fh, name, channels, max_pixels)
    except OSError as exc:
        raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None


def read_image_bytes(
    data: bytes, name: str, channels: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode an in-memory image (e.g. an upload) exactly like :func:`read_image`.

    Args:
        data: the file's bytes.
        name: the file name, used for the DICOM suffix check and in error messages.
        channels: ``"auto"``, ``"gray"`` or ``"rgb"``.
        max_pixels: refuse images with more pixels than this.

    Example:
        >>> img = read_image_bytes(Path("x.png").read_bytes(), "x.png")  # doctest: +SKIP
    """
    _check_channels(channels)
    if len(data) == 0:
        raise ImageError(name, "empty file (0 bytes)")
    return _decode(io.BytesIO(data), name, channels, max_pixels)


def _check_channels(channels: str) -> None:
    if channels not in CHANNELS:
        raise ValueError(f"channels={channels!r} is not valid; choose one of {', '.join(CHANNELS)}")


def pixel_cap(input_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The largest image (in pixels) worth decoding for a model with ``input_size`` inputs.

    ``(PIXEL_CAP_SIDE_FACTOR * input_size) ** 2``, at least ``MIN_PIXEL_CAP`` and at most ``max_pixels``:
    224 px -> 20 Mpx, so decode memory follows the model instead of a fixed 100 Mpx.

    >>> pixel_cap(224)
    20070400
    """
    return int(min(max_pixels, max(MIN_PIXEL_CAP, (PIXEL_CAP_SIDE_FACTOR * int(input_size)) ** 2)))


def sniff_format(head: bytes, name: str = "") -> str | None:
    """``"dicom"``, ``"raster"`` (a Pillow format) or None, from the first 132 bytes (then the suffix).

    >>> sniff_format(b"\\xff\\xd8\\xff\\xe0", "scan.dcm")
    'raster'
    """
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_MAGIC):
        return "raster"
    if Path(name).suffix.lower() in DICOM_EXTENSIONS:
        return "dicom"
    return None


def _decode(fh: IO[bytes], name: str, channels: str, max_pixels: int) -> np.ndarray:
    head = fh.read(132)
    fh.seek(0)
    try:
        if sniff_format(head, name) == "dicom":
            arr = _decode_dicom(fh, name, max_pixels)
        else:
            arr = _decode_pil(fh, name, head, max_pixels)
        return _to_channels(arr, channels)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(name, "not enough memory to decode this image") from None
    except Exception as exc:  # noqa: BLE001 - the contract: any decoder failure is an ImageError
        detail = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise ImageError(name, f"damaged or unsupported image data ({reason})") from None


def _not_image_reason(head: bytes) -> str:
    if head.startswith((b"<", b"{", b"[")) or all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image: the file contains text"
    return f"not an image: unrecognised format (file starts with {head[:8]!r})"


def _decode_pil(fh: IO[bytes], name: str, head: bytes, max_pixels: int) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    with warnings.catch_warnings():
        # the explicit max_pixels check below replaces Pillow's global warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fh)
        except UnidentifiedImageError:
            raise ImageError(name, _not_image_reason(head)) from None
        except Image.DecompressionBombError as exc:
            raise ImageError(name, f"refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(name, f"corrupt image header ({exc})") from None
    width, height = im.size
    if width * height > max_pixels:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height} pixels, more than max_pixels={max_pixels} "
            "(refused as a possible decompression bomb)",
        )
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(name, f"truncated or corrupt {im.format or 'image'} data ({exc})") from None
    return _pil_to_array(im)


def _pil_to_array(im: Any) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("L", "RGB"):
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("LA", "La", "RGBA", "RGBa"):
        return _composite_on_black(np.asarray(im), premultiplied=mode in ("La", "RGBa"))
    if mode.startswith(("I", "F")):
        return _minmax_to_uint8(np.asarray(im))
    return np.asarray(im.convert("RGB"))


def _composite_on_black(arr: np.ndarray, premultiplied: bool) -> np.ndarray:
    color = arr[..., :-1]
    if premultiplied:
        out = color
    else:
        alpha = arr[..., -1:].astype(np.uint16)
        out = ((color.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _minmax_to_uint8(
    arr: np.ndarray,
    low: float | None = None,
    high: float | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Map ``[low, high]`` (default: the data's min and max) linearly onto 0..255.

    ``transform`` (e.g. a DICOM modality / VOI LUT) is applied first. Rows go through in blocks of
    about ``CHUNK_PIXELS``, so the float64 work space is one block, never the whole image.
    """
    blocks = _row_blocks(arr)
    if low is None or high is None:
        mins, maxs = [], []
        for block in blocks:
            part = block if transform is None else transform(block)
            mins.append(float(np.min(part)))
            maxs.append(float(np.max(part)))
        low = min(mins) if low is None else low
        high = max(maxs) if high is None else high
    out = np.zeros(arr.shape, dtype=np.uint8)
    if not high > low:
        return out
    start = 0
    for block in blocks:
        part = block if transform is None else transform(block)
        scaled = np.array(part, dtype=np.float64)  # one block-sized work buffer, updated in place
        scaled -= low
        scaled *= 255.0
        scaled /= high - low
        np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled)
        out[start : start + len(block)] = scaled
        start += len(block)
    return out


def _row_blocks(arr: np.ndarray) -> list[np.ndarray]:
    """Views of ``arr`` split along its first axis into blocks of about ``CHUNK_PIXELS`` values."""
    per_row = max(1, int(np.prod(arr.shape[1:])))
    rows = max(1, CHUNK_PIXELS // per_row)
    return [arr[i : i + rows] for i in range(0, max(1, arr.shape[0]), rows)] if arr.size else [arr]


def _to_channels(arr: np.ndarray, channels: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 3:
        if channels == "gray":
            # ITU-R 601-2 luma, the transform Pillow's convert("L") uses
            luma = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
            return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        if channels == "auto" and _channels_equal(arr):
            return np.ascontiguousarray(arr[..., 0])
        return np.ascontiguousarray(arr)
    if channels == "rgb":
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    return np.ascontiguousarray(arr)


def _channels_equal(arr: np.ndarray) -> bool:
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))


def _decode_dicom(fh: IO[bytes], name: str, max_pixels: int) -> np.ndarray:
    from pydicom.errors import InvalidDicomError

    from medxfer.data import dicom

    try:
        ds = dicom.read_bounded(fh, max_pixels)
    except dicom.DicomError as exc:
        raise ImageError(name, str(exc)) from None
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        raise ImageError(name, f"not a readable DICOM file ({exc})") from None
    if "PixelData" not in ds:
        raise ImageError(name, "DICOM file has no pixel data (PixelData element missing)")
    try:
        geo = dicom.geometry(ds, max_pixels)
        dicom.check_finite(ds)
        arr = dicom.one_frame(_dicom_pixels(ds, name), geo)
    except dicom.DicomError as exc:
        raise ImageError(name, str(exc)) from None
    if arr.ndim == 3:  # colour (RGB after pydicom's YBR conversion)
        if arr.dtype == np.uint8:
            return arr
        return _minmax_to_uint8(arr)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    return _dicom_gray(arr, ds, photometric)


def _dicom_pixels(ds: Any, name: str) -> np.ndarray:
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, TypeError, EOFError) as exc:
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if ts is not None and ts.is_compressed:
            raise ImageError(
                name,
                f"cannot decode DICOM transfer syntax {ts.name} ({ts}): no installed decoder handles it "
                f"or the data is corrupt ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "decoders: pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, python-gdcm",
            ) from None
        raise ImageError(name, f"cannot decode DICOM pixel data ({exc})") from None


def _dicom_gray(arr: np.ndarray, ds: Any, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    def modality(block: np.ndarray) -> np.ndarray:
        return apply_modality_lut(block, ds)

    def modality_voi(block: np.ndarray) -> np.ndarray:
        return apply_voi_lut(apply_modality_lut(block, ds), ds, index=0)

    voi_range = _voi_output_range(ds)
    if voi_range is not None:
        try:
            out = _minmax_to_uint8(arr, *voi_range, transform=modality_voi)
        except (ValueError, IndexError, TypeError):
            out = _minmax_to_uint8(arr, transform=modality)  # a broken window: the full data range
    else:
        out = _minmax_to_uint8(arr, transform=modality)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _voi_output_range(ds: Any) -> tuple[float, float] | None:
    """The value range ``apply_voi_lut`` maps onto (PS3.3 C.11.2), or None without VOI data."""
    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    bits = int(ds.get("BitsStored", 16))
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None and not ds.get("ModalityLUTSequence"):
        y_min, y_max = y_min * float(slope) + float(intercept), y_max * float(slope) + float(intercept)
    return (min(y_min, y_max), max(y_min, y_max))
