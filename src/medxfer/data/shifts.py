"""Acquisition-shift pixel primitives: one amount in, one image out (same shape and dtype).

The one copy of this pixel math: the stress test (:mod:`medxfer.inference.stress`) calls each with
fixed severities, training augmentation (:func:`medxfer.data.transforms.augment_uint8`) with random
amounts. Images are uint8 ``(H, W)`` or ``(H, W, 3)``. Pixel amounts (blur sigma) are given for a
224-pixel short side and scaled with the image, so an amount means the same on a 224 px thumbnail
and a 2000 px film.
"""

from __future__ import annotations

import io

import numpy as np

REFERENCE_SIDE = 224
_LEVELS = np.arange(256, dtype=np.float64)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round and clip to 0..255 uint8."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def scale(img: np.ndarray) -> float:
    """Pixels at this image's size per pixel at the 224 px reference."""
    return min(img.shape[:2]) / REFERENCE_SIDE


def _pil(img: np.ndarray):  # noqa: ANN202
    from PIL import Image

    return Image.fromarray(img)  # (H, W) -> "L", (H, W, 3) -> "RGB"


def gain(img: np.ndarray, factor: float) -> np.ndarray:
    """Multiply intensities by ``factor`` and clip at 255 (over-exposure burns out highlights).

    >>> gain(np.array([[100, 200]], np.uint8), 1.2).tolist()
    [[120, 240]]
    """
    return to_uint8(_LEVELS * float(factor))[img]  # a lookup table: the same per-pixel value, faster


def gamma(img: np.ndarray, g: float) -> np.ndarray:
    """``255 * (x / 255) ** g``: end points kept; ``g > 1`` darkens mid-tones, ``g < 1`` lightens them.

    >>> gamma(np.array([[0, 100, 255]], np.uint8), 2.0).tolist()
    [[0, 39, 255]]
    """
    return to_uint8(255.0 * (_LEVELS / 255.0) ** float(g))[img]


def contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``mean + factor * (x - mean)`` around the image mean (``factor < 1``: a flatter film).

    >>> contrast(np.array([[100, 200]], np.uint8), 0.5).tolist()
    [[125, 175]]
    """
    mean = img.astype(np.float64).mean()
    return to_uint8(mean + float(factor) * (_LEVELS - mean))[img]


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, ``sigma`` in pixels at 224 px scaled to the image size."""
    from PIL import ImageFilter

    return np.asarray(_pil(img).filter(ImageFilter.GaussianBlur(float(sigma) * scale(img))), dtype=np.uint8)


def noise(img: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of ``sd`` grey levels, clipped to 0..255 (``rng`` makes it reproducible)."""
    return to_uint8(img.astype(np.float64) + rng.normal(0.0, float(sd), img.shape))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1..95) and decode again (export pipelines, PACS screenshots)."""
    from PIL import Image

    pil = _pil(img)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode), dtype=np.uint8)
    return out.reshape(img.shape)


def zoom(img: np.ndarray, keep: float) -> np.ndarray:
    """Centre crop keeping ``keep`` of each side, resized back to the original size (tighter field)."""
    from PIL import Image

    h, w = img.shape[:2]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = img[y0 : y0 + ch, x0 : x0 + cw]
    return np.asarray(_pil(crop).resize((w, h), Image.BILINEAR), dtype=np.uint8)


def crop(img: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The box ``[x0, x0 + width) x [y0, y0 + height)`` resized back to the image's size (bilinear):
    a random resized crop's pixels (:func:`medxfer.data.transforms.crop_box` draws the box).

    >>> crop(np.arange(16, dtype=np.uint8).reshape(4, 4), 0, 0, 4, 4).shape
    (4, 4)
    """
    from PIL import Image

    h, w = img.shape[:2]
    box = img[y0 : y0 + height, x0 : x0 + width]
    return np.asarray(_pil(np.ascontiguousarray(box)).resize((w, h), Image.BILINEAR), dtype=np.uint8)


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise about the centre (patient positioning), corners filled with 0."""
    from PIL import Image

    return np.asarray(_pil(img).rotate(degrees, resample=Image.BILINEAR, fillcolor=0), dtype=np.uint8)


def lowres(img: np.ndarray, factor: float) -> np.ndarray:
    """Down-sample each side by ``factor`` (box filter), then back up (bilinear): lost detail, same size."""
    from PIL import Image

    h, w = img.shape[:2]
    small = _pil(img).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BILINEAR), dtype=np.uint8)
