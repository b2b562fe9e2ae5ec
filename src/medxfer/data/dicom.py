"""Bounded DICOM reading for :mod:`medxfer.data.images` (its only caller): memory follows the pixel cap.

Why a separate step: pydicom inflates a Deflated Explicit VR Little Endian file whole inside ``dcmread``
(about 1 GB per deflated MB of zeros), and reads a native PixelData element of any length. Here:

- the file meta is read first; a deflated data set is inflated by :func:`inflate_bounded`: 1 MiB for the
  header, then at most the bytes that ``Rows x Columns x SamplesPerPixel x NumberOfFrames`` pixels of
  ``BitsAllocated`` need (plus 1 MiB of trailing elements); past that it is refused;
- for every other transfer syntax the header is read without the pixel data, the image size is checked
  against the pixel cap, and native (uncompressed) pixel data longer than the size needs is refused
  before it is read;
- :func:`one_frame` checks the decoded array against the header's geometry (pydicom 3 turns surplus
  bytes into extra frames) and keeps the first frame of a true multi-frame file;
- :func:`check_finite` refuses non-finite rescale / window values (they predicted a black image).

Every refusal is a :class:`DicomError` with the reason; ``images`` turns it into an ``ImageError``
naming the file.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
HEADER_BYTES = 1 << 20  # the inflated elements before PixelData: at most 1 MiB
TRAILER_BYTES = 1 << 20  # elements after PixelData (padding, signatures): at most 1 MiB
FINITE_KEYWORDS = ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
PIXEL_DATA_TAG = 0x7FE00010


class DicomError(ValueError):
    """A DICOM file refused before (or instead of) decoding; ``str(e)`` is the reason."""


@dataclass(frozen=True)
class Geometry:
    """The image size a DICOM header declares."""

    rows: int
    cols: int
    samples: int
    frames: int
    bits: int

    @property
    def pixels(self) -> int:
        return self.rows * self.cols * self.frames

    @property
    def nbytes(self) -> int:
        """Bytes of native pixel data the header asks for (all frames, before the even-length pad)."""
        return self.pixels * self.samples * max(1, math.ceil(self.bits / 8))


def geometry(ds: Any, max_pixels: int) -> Geometry:
    """Rows / Columns / SamplesPerPixel / NumberOfFrames / BitsAllocated, checked against ``max_pixels``."""
    try:
        geo = Geometry(
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            samples=int(ds.get("SamplesPerPixel", 1) or 1),
            frames=int(ds.get("NumberOfFrames", 1) or 1),
            bits=int(ds.get("BitsAllocated", 16) or 16),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomError(f"DICOM file lacks image size (Rows/Columns: {exc})") from None
    if min(geo.rows, geo.cols, geo.samples, geo.frames, geo.bits) < 1:
        raise DicomError(
            f"DICOM image size is not positive (Rows={geo.rows}, Columns={geo.cols}, "
            f"SamplesPerPixel={geo.samples}, NumberOfFrames={geo.frames}, BitsAllocated={geo.bits})"
        )
    if geo.pixels > max_pixels:
        raise DicomError(
            f"DICOM is {geo.frames}x{geo.cols}x{geo.rows} = {geo.pixels} pixels, more than "
            f"max_pixels={max_pixels} (refused as a possible decompression bomb)"
        )
    return geo


def read_bounded(fh: IO[bytes], max_pixels: int) -> Any:
    """The whole data set of a DICOM file, read only once its size is known to fit ``max_pixels``."""
    import pydicom

    meta, preamble = _file_meta(fh)
    syntax = meta.get("TransferSyntaxUID")
    if syntax is not None and str(syntax) == DEFLATED:
        return _read_deflated(fh, preamble, meta, max_pixels)
    fh.seek(0)
    header = pydicom.dcmread(fh, force=True, stop_before_pixels=True)
    if "Rows" in header or "Columns" in header:
        geo = geometry(header, max_pixels)
        remaining = _size(fh) - fh.tell()
        native = syntax is None or not pydicom.uid.UID(str(syntax)).is_compressed
        if native and remaining > geo.nbytes + 1 + TRAILER_BYTES + 12:
            raise DicomError(
                f"DICOM pixel data is about {remaining} bytes, more than the {geo.nbytes} bytes that "
                f"Rows x Columns x SamplesPerPixel x NumberOfFrames x BitsAllocated need "
                f"({geo.rows}x{geo.cols}x{geo.samples}x{geo.frames}x{geo.bits} bits)"
            )
    fh.seek(0)
    return pydicom.dcmread(fh, force=True)


def _size(fh: IO[bytes]) -> int:
    here = fh.tell()
    end = fh.seek(0, 2)
    fh.seek(here)
    return end


def _file_meta(fh: IO[bytes]) -> tuple[Any, bytes | None]:
    """The preamble and the file meta group (0002), leaving ``fh`` at the start of the data set."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fh.seek(0)
    preamble = read_preamble(fh, True)
    return _read_file_meta_info(fh), preamble


def _read_deflated(fh: IO[bytes], preamble: bytes | None, meta: Any, max_pixels: int) -> Any:
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    body = inflate_bounded(fh.read(), max_pixels)
    dataset = read_dataset(DicomBytesIO(body), False, True)
    return FileDataset("", dataset, preamble, meta, False, True)


def inflate_bounded(raw: bytes, max_pixels: int) -> bytes:
    """Inflate a deflated DICOM data set: the header first, then no more than its pixels need.

    Refused (:class:`DicomError`) when the header declares more than ``max_pixels`` pixels or the data
    inflates past ``HEADER_BYTES`` + the pixel bytes + ``TRAILER_BYTES``: memory stays a few times the
    pixel cap, whatever the file's compression ratio.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        head = inflater.decompress(raw, HEADER_BYTES)
        header = read_dataset(DicomBytesIO(head), False, True, stop_when=_at_pixel_data)
    except zlib.error as exc:
        raise DicomError(f"corrupt deflated DICOM data ({exc})") from None
    except EOFError:
        raise DicomError(f"deflated DICOM header is longer than {HEADER_BYTES} bytes") from None
    geo = geometry(header, max_pixels)
    limit = HEADER_BYTES + geo.nbytes + TRAILER_BYTES
    parts, total = [head], len(head)
    try:
        while inflater.unconsumed_tail and total <= limit:
            parts.append(inflater.decompress(inflater.unconsumed_tail, limit + 1 - total))
            total += len(parts[-1])
        if total <= limit and not inflater.unconsumed_tail:
            parts.append(inflater.flush())
            total += len(parts[-1])
    except zlib.error as exc:
        raise DicomError(f"corrupt deflated DICOM data ({exc})") from None
    if total > limit:
        raise DicomError(
            f"deflated DICOM inflates to more than {limit} bytes, though its header declares "
            f"{geo.rows}x{geo.cols}x{geo.samples}x{geo.frames} pixels of {geo.bits} bits "
            "(refused as a decompression bomb)"
        )
    return b"".join(parts)


def _at_pixel_data(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) >= PIXEL_DATA_TAG


def check_finite(ds: Any) -> None:
    """Refuse a non-finite (or non-numeric) RescaleSlope / RescaleIntercept / WindowCenter / WindowWidth."""
    from pydicom.multival import MultiValue

    for keyword in FINITE_KEYWORDS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        for item in value if isinstance(value, MultiValue | list | tuple) else [value]:
            try:
                number = float(item)
            except (TypeError, ValueError):
                raise DicomError(f"DICOM {keyword} is {item!r}, not a number") from None
            if not math.isfinite(number):
                raise DicomError(f"DICOM {keyword} is {number}; it must be a finite number")


def one_frame(arr: np.ndarray, geo: Geometry) -> np.ndarray:
    """The decoded array as one frame, checked against the header's geometry.

    A true multi-frame file (``NumberOfFrames`` > 1) gives its first frame; any other shape (pixel data
    longer or shorter than the header says) is refused.
    """
    frame = (geo.rows, geo.cols, geo.samples) if geo.samples > 1 else (geo.rows, geo.cols)
    expected = frame if geo.frames == 1 else (geo.frames, *frame)
    if arr.shape != expected:
        raise DicomError(
            f"decoded DICOM pixel data has shape {tuple(arr.shape)}, but Rows x Columns x SamplesPerPixel "
            f"x NumberOfFrames = {geo.rows}x{geo.cols}x{geo.samples}x{geo.frames} means {expected} "
            "(extra or missing pixel bytes)"
        )
    return arr if geo.frames == 1 else arr[0]
