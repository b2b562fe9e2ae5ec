"""Seed images for the decoder fuzz test and ``bench/fuzz_images.py``: real X-ray pixels in every format.

Imported as ``image_corpus`` by the tests (``tests/data`` is on ``sys.path`` under pytest) and by the bench
script (which adds the folder itself). Nothing here is written to the repository.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SIDE = 48  # small seeds keep every mutant fast to decode


def real_pixels(shared_data: Path) -> np.ndarray:
    """A real Kermany X-ray, downsized to ``SIDE`` x ``SIDE`` gray uint8."""
    from PIL import Image

    path = sorted((shared_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[0]
    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR))


def _pil_bytes(arr: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    syntax: str = "explicit",
    photometric: str = "MONOCHROME2",
    preamble: bool = True,
    **extra: object,
) -> bytes:
    """A small DICOM file holding ``pixels`` (uint8, uint16 or int16): uncompressed, deflated, RLE or JPEG
    baseline; ``preamble=False`` writes it without the 128-byte preamble and file meta header checks."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        RLELossless,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = 16 if pixels.dtype in (np.uint16, np.int16) else 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    for key, value in extra.items():
        setattr(ds, key, value)
    if syntax == "jpeg":
        meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([_pil_bytes(pixels, "JPEG", quality=90)])
    else:
        ds.PixelData = pixels.tobytes()
        if syntax == "rle":
            ds.compress(RLELossless, encoding_plugin="pydicom")
        elif syntax == "deflate":
            meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=preamble)
    return buf.getvalue()


def seed_corpus(shared_data: Path) -> dict[str, bytes]:
    """File name -> bytes: the real JPEG itself plus PNG (8/16-bit), TIFF, BMP, GIF, WebP and DICOMs."""
    path = sorted((shared_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[0]
    gray = real_pixels(shared_data)
    wide = (gray.astype(np.uint16) * 257 + 3).astype(np.uint16)
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    return {
        "real.jpeg": path.read_bytes(),
        "small.jpeg": _pil_bytes(gray, "JPEG", quality=85),
        "gray.png": _pil_bytes(gray, "PNG"),
        "wide16.png": _pil_bytes(wide, "PNG"),
        "rgb.png": _pil_bytes(rgb, "PNG"),
        "gray.tif": _pil_bytes(gray, "TIFF"),
        "gray.bmp": _pil_bytes(gray, "BMP"),
        "gray.gif": _pil_bytes(gray, "GIF"),
        "gray.webp": _pil_bytes(gray, "WEBP", lossless=True),
        "plain.dcm": dicom_bytes(gray),
        "wide16.dcm": dicom_bytes(
            wide, WindowCenter=30000, WindowWidth=40000, RescaleSlope=1, RescaleIntercept=-5
        ),
        "mono1.dcm": dicom_bytes(gray, PhotometricInterpretation="MONOCHROME1"),
        "rle.dcm": dicom_bytes(gray, "rle"),
        "jpeg.dcm": dicom_bytes(gray, "jpeg"),
        "deflate.dcm": dicom_bytes(gray, "deflate"),
    }


def deflate_bomb(rows: int, cols: int, pixel_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM: a small header declaring ``rows`` x ``cols`` 16-bit
    pixels, then ``pixel_bytes`` zero bytes of PixelData, deflated as a stream (never held inflated here).

    About 1 MB of file per GB of ``pixel_bytes``: the shape of a decompression bomb.
    """
    import struct
    import zlib

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    body.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes))
    # Full flushes reset the deflate window, so one compressed 16 MiB block of zeros repeats verbatim.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [head.getvalue(), deflater.compress(body.getvalue()), deflater.flush(zlib.Z_FULL_FLUSH)]
    chunk = 1 << 24
    block = deflater.compress(bytes(chunk)) + deflater.flush(zlib.Z_FULL_FLUSH)
    parts += [block] * (pixel_bytes // chunk)
    parts += [deflater.compress(bytes(pixel_bytes % chunk)), deflater.flush()]
    return b"".join(parts)


def mutants(data: bytes, n: int, seed: int) -> Iterator[bytes]:
    """``n`` damaged copies of ``data``: byte flips, overwritten runs, truncations, insertions, deletions."""
    rng = random.Random(seed)
    for _ in range(n):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(buf)) if buf else 0
            if op < 0.45 and buf:
                buf[pos] ^= 1 << rng.randrange(8)
            elif op < 0.65 and buf:
                buf[pos : pos + 4] = rng.choice(
                    [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]
                )
            elif op < 0.8:
                del buf[rng.randrange(max(1, len(buf) // 4), len(buf) + 1) :]
            elif op < 0.9:
                buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            else:
                del buf[pos : pos + rng.randint(1, 16)]
        yield bytes(buf) or b"\x00"
