"""One read of every image: content hash, header facts, perceptual hash and a small thumbnail.

``medxfer check`` and the shortcut probe both need facts about every file; reading each file once
(bytes -> SHA-256, header -> size/format, a reduced decode -> statistics, dHash and a 32x32
thumbnail) keeps ``check`` on ~12k images well under two minutes on two cores. JPEGs are decoded
with libjpeg's DCT scaling (``Image.draft``), which still reads the whole stream, so truncated files
are caught. Anything the fast path does not handle (DICOM, 16-bit, odd modes, failures) goes
through :func:`medxfer.data.images.read_image_bytes`, whose :class:`ImageError` gives the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

THUMB = 32  # thumbnail side (pixels) kept for the shortcut probe
REDUCED = 128  # target side of the reduced decode used for statistics and hashes
_FAST_FORMATS = {"JPEG", "PNG", "BMP"}
_FAST_MODES = {"L", "RGB", "RGBA", "LA", "P", "1"}


@dataclass
class FileFacts:
    """What one read of one file tells us; ``reason`` is set (and the rest empty) when unreadable."""

    path: str
    reason: str = ""
    nbytes: int = 0
    sha256: str | None = None
    width: int = 0
    height: int = 0
    ext: str = ""
    mode: str = ""  # file's pixel mode as stored (PIL mode, or "array-gray"/"array-rgb" via read_image)
    channels: int = 0  # channels stored in the file (1 gray, 3 RGB, 4 RGBA)
    mean: float = 0.0
    std: float = 0.0
    dhash: int | None = None
    thumb: np.ndarray | None = None  # (THUMB, THUMB, 3) uint8, squashed (aspect not kept), unmasked

    @property
    def ok(self) -> bool:
        return not self.reason


def _max_pixels() -> int:
    try:
        from medxfer.data.images import DEFAULT_MAX_PIXELS

        return int(DEFAULT_MAX_PIXELS)
    except ImportError:  # pragma: no cover - images module always ships with the package
        return 178_956_970


def _fast_open(data: bytes):  # noqa: ANN202 - returns PIL image or None
    """Open 8-bit JPEG/PNG/BMP with PIL, decoding at reduced size when the format allows."""
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    if im.format not in _FAST_FORMATS or im.mode not in _FAST_MODES:
        return None, "", 0
    if im.width * im.height > _max_pixels():
        return None, "", 0  # read_image refuses it with its own reason
    mode, channels = im.mode, len(im.getbands())
    if im.format == "JPEG":
        im.draft(im.mode, (REDUCED, REDUCED))
    im.load()
    im = ImageOps.exif_transpose(im)
    return im, mode, channels


def _facts_from_pil(facts: FileFacts, im, mode: str, channels: int) -> FileFacts:  # noqa: ANN001
    from PIL import Image

    from medxfer.data.hashing import dhash64

    facts.mode, facts.channels = mode, channels
    if max(im.size) > 2 * REDUCED:
        im = im.copy()
        im.thumbnail((2 * REDUCED, 2 * REDUCED), Image.Resampling.BOX)
    rgb = im.convert("RGB")
    gray = np.asarray(rgb.convert("L"))
    facts.mean, facts.std = float(gray.mean()), float(gray.std())
    facts.dhash = dhash64(gray)
    facts.thumb = np.asarray(rgb.resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)
    return facts


def _header_size(data: bytes) -> tuple[int, int]:
    """Full-resolution (width, height) after EXIF orientation, from the header only."""
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    w, h = im.size
    orientation = im.getexif().get(0x0112, 1) if im.format == "JPEG" else 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def inspect_file(path: str) -> FileFacts:
    """Read ``path`` once and return its :class:`FileFacts` (never raises for a bad image)."""
    from PIL import Image

    facts = FileFacts(path=str(path), ext=Path(path).suffix.lower())
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        facts.reason = f"cannot read file ({exc.strerror or exc})"
        return facts
    facts.nbytes = len(data)
    facts.sha256 = hashlib.sha256(data).hexdigest()
    try:
        im, mode, channels = _fast_open(data)
        if im is not None:
            facts.width, facts.height = _header_size(data)
            return _facts_from_pil(facts, im, mode, channels)
    except Exception:  # noqa: BLE001 - any decoder failure: let read_image_bytes name the reason
        pass
    from medxfer.data.images import ImageError, read_image_bytes

    try:
        arr = read_image_bytes(data, Path(path).name)
    except ImageError as exc:
        facts.reason = exc.reason
        return facts
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the whole check
        facts.reason = f"undecodable ({type(exc).__name__}: {exc})"
        return facts
    facts.height, facts.width = int(arr.shape[0]), int(arr.shape[1])
    kind = "gray" if arr.ndim == 2 else "rgb"
    return _facts_from_pil(facts, Image.fromarray(arr), f"array-{kind}", 1 if arr.ndim == 2 else 3)


def scan_files(paths: Sequence[str], workers: int = 2, progress: bool = True) -> list[FileFacts]:
    """Inspect every file once, ``workers`` threads in parallel, with a rich progress bar.

    Returns one :class:`FileFacts` per path, in the order given.
    """
    workers = max(1, int(workers))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(inspect_file, paths)
        if not progress:
            return list(results)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        out: list[FileFacts] = []
        columns = (
            TextColumn("[bold]reading images"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("read", total=len(paths))
            for facts in results:
                out.append(facts)
                bar.advance(task)
        return out


def thumbs_array(facts: Sequence[FileFacts]) -> np.ndarray:
    """Stack thumbnails into ``(N, THUMB, THUMB, 3)`` uint8 (zeros for unreadable files)."""
    out = np.zeros((len(facts), THUMB, THUMB, 3), dtype=np.uint8)
    for i, f in enumerate(facts):
        if f.thumb is not None:
            out[i] = f.thumb
    return out


_TEXT = ("path", "reason", "sha256", "ext", "mode")
_NUMBERS = {"nbytes": np.int64, "width": np.int64, "height": np.int64, "channels": np.int64}
_NUMBERS |= {"mean": np.float64, "std": np.float64}


def file_stamp(path: str) -> str:
    """``size:mtime_ns`` of ``path`` (``missing`` if unreadable): cache keys of checks and scans use it."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _stamp_key(paths: Sequence[str]) -> str:
    """A hash of every file's path, size and modification time (the cache key of a scan)."""
    h = hashlib.sha256(b"scan-v1")
    for p in paths:
        h.update(f"{p}\x1f{file_stamp(p)}\x1e".encode())
    return h.hexdigest()


def scan_files_cached(paths: Sequence[str], workers: int = 2, progress: bool = True) -> list[FileFacts]:
    """:func:`scan_files`, reused from ``$MEDXFER_CACHE/scan`` when every file (path, size, mtime) is
    unchanged: a run's train/val images are read once, not at every external evaluation. The cache is
    plain arrays (``.npz`` loaded without pickle)."""
    from medxfer.data.cache import cache_root
    from medxfer.io import atomic_write_bytes

    file = cache_root() / "scan" / f"{_stamp_key(paths)}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return _facts_from_arrays({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError):
            pass  # unreadable or older entry: scan again
    facts = scan_files(paths, workers=workers, progress=progress)
    buf = io.BytesIO()
    np.savez(buf, **_facts_to_arrays(facts))
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(file, buf.getvalue())
    return facts


def _facts_to_arrays(facts: Sequence[FileFacts]) -> dict[str, np.ndarray]:
    out = {k: np.array([getattr(f, k) or "" for f in facts], dtype=str) for k in _TEXT}
    out |= {k: np.array([getattr(f, k) for f in facts], dtype=t) for k, t in _NUMBERS.items()}
    out["dhash"] = np.array([f.dhash or 0 for f in facts], dtype=np.uint64)
    out["has_dhash"] = np.array([f.dhash is not None for f in facts], dtype=bool)
    out["has_thumb"] = np.array([f.thumb is not None for f in facts], dtype=bool)
    out["thumb"] = thumbs_array(facts)
    return out


def _facts_from_arrays(z: dict[str, np.ndarray]) -> list[FileFacts]:
    facts = []
    for i in range(len(z["path"])):
        f = FileFacts(**{k: str(z[k][i]) for k in _TEXT}, **{k: z[k][i].item() for k in _NUMBERS})
        f.sha256 = f.sha256 or None
        f.dhash = int(z["dhash"][i]) if z["has_dhash"][i] else None
        f.thumb = z["thumb"][i].copy() if z["has_thumb"][i] else None
        facts.append(f)
    return facts
