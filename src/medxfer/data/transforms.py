"""From a decoded image (see :mod:`medxfer.data.images`) to the tensor a backbone eats.

Order, the same in training, evaluation, prediction and serving: mask -> channel convention ->
resize -> contrast preprocessing (``model.preprocess``: none, histogram equalisation or CLAHE, on
the resized uint8 image) -> [augment] -> scale to [0, 1] -> normalise with the weights' mean/std.
The parameters come from :class:`medxfer.runs.ModelInfo`, never retyped.

Augmentation presets are chosen for chest X-rays: small rotations, shear, zoom, brightness and
contrast, and (preset ``acquisition``) the gamma, blur, noise and JPEG differences between scanners
and export pipelines, drawn with the stress test's pixel code (:mod:`medxfer.data.shifts`).
Horizontal flip is available but off by default: anatomy is not mirror-symmetric
(heart on the left, ``dextrocardia`` is itself a finding) and burnt-in laterality markers would
be flipped, so a flipped X-ray is not a plausible X-ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from medxfer.data import shifts
from medxfer.data.contrast import contrast

if TYPE_CHECKING:
    import torch

    from medxfer.runs import ModelInfo


JPEG_BEST = 95  # the best quality a ``jpeg`` draw can give (Pillow's top useful setting)


@dataclass
class Augment:
    """Random augmentation parameters (all expressible in a YAML config; 0 = off).

    Geometry: ``rotation`` degrees (±), ``shear`` as a fraction (Keras ``shear_range`` style:
    0.2 ≈ 11°), ``zoom`` ± fraction (0.2 = scale 0.8..1.2), ``translate`` fraction,
    ``crop_scale`` lower bound of a RandomResizedCrop area (1.0 = off), ``crop_ratio`` its
    ``[low, high]`` aspect-ratio range (width/height relative to the image's, drawn log-uniformly;
    ``low <= 1 <= high``; ``[1, 1]`` keeps the aspect), ``hflip`` probability.

    Acquisition (how another scanner, exposure or export pipeline renders the same patient):
    ``brightness`` (exposure gain) and ``contrast`` ± fraction or a ``[low, high]`` factor range
    (Keras ``brightness_range=[0.2, 1.0]``; contrast as a fraction only), ``gamma`` ± fraction of
    log-gamma (0.3 = gamma ``exp(±0.3)`` = 0.74..1.35) or a ``[low, high]`` gamma range, ``blur``
    largest Gaussian sigma in pixels at 224 px (scaled with the image), ``noise`` largest Gaussian
    noise sd in grey levels, ``jpeg`` lowest JPEG quality (30 = quality drawn in 30..95).
    ``p_degrade`` is the probability each of blur, noise and JPEG is applied to an image; the amount
    is then drawn uniformly (sigma in [0, blur], sd in [0, noise]).

    Presets (:data:`PRESETS`; none flips, see the module docstring):

    - ``none``: the identity.
    - ``light``: rotation 5, zoom 0.05, translate 0.03, brightness/contrast 0.1.
    - ``medium``: rotation 10, shear 0.1, zoom 0.1, translate 0.05, brightness/contrast 0.2.
    - ``heavy``: rotation 15, shear 0.2, zoom 0.2, translate 0.08, brightness/contrast 0.3, crop_scale 0.8.
    - ``acquisition``: ``light`` geometry + brightness 0.2, contrast 0.3, gamma 0.4 (0.67..1.49),
      blur up to 1.5 px, noise sd up to 10, JPEG quality 30..95, each degradation with probability 0.5:
      about the first severity of each ``evaluate --stress`` shift, its second for noise.
    - ``scale-intensity``: random resized crop of 30-100 % of the area at aspect 3/4..4/3,
      brightness and contrast ±0.3, gamma exp(±0.3) (0.74..1.35); no rotation, no degradation.
    """

    rotation: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    translate: float = 0.0
    brightness: float | list[float] = 0.0
    contrast: float = 0.0
    crop_scale: float = 1.0
    crop_ratio: list[float] = field(default_factory=lambda: [1.0, 1.0])
    hflip: float = 0.0
    gamma: float | list[float] = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0
    p_degrade: float = 0.5

    def __post_init__(self) -> None:
        _validate(self)

    def is_identity(self) -> bool:
        """True when no draw changes an image (``p_degrade`` alone changes nothing)."""
        degrades = self.p_degrade > 0 and bool(self.blur or self.noise or self.jpeg)
        off = replace(self, blur=0.0, noise=0.0, jpeg=0, p_degrade=0.5)
        if self.crop_scale == 1.0:  # a whole-image crop is the image, whatever its aspect range
            off.crop_ratio = [1.0, 1.0]
        return not degrades and off == Augment()


def _number(name: str, value: object, high: float | None = None, below: bool = False) -> float:
    """``value`` as a float in ``[0, high]`` (``[0, high)`` when ``below``), else an error naming ``name``."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (0 <= value and (high is None or value < high or (value == high and not below))):
        bound = "" if high is None else f" and {'<' if below else '<='} {high}"
        raise ValueError(f"{name}={value!r}: expected a number >= 0{bound}")
    return float(value)


def _validate(aug: Augment) -> None:
    """Each field's type and range; the message names the field (``noise=-3: expected ...``)."""
    for name in ("rotation", "shear", "translate", "blur", "noise"):
        _number(name, getattr(aug, name))
    for name in ("contrast", "hflip", "p_degrade"):
        _number(name, getattr(aug, name), 1.0)
    _number("zoom", aug.zoom, 1.0, below=True)
    if not 0 < _number("crop_scale", aug.crop_scale, 1.0):
        raise ValueError("crop_scale=0: expected the smallest crop area, a number > 0 and <= 1 (1 = off)")
    for name in ("brightness", "gamma"):
        value = getattr(aug, name)
        if not isinstance(value, list | tuple):
            _number(name, value, 1.0, below=name == "brightness")
        elif len(value) != 2 or not 0 < _number(name, value[0]) <= _number(name, value[1]):
            raise ValueError(f"{name}={value!r}: expected a fraction or a [low, high] range, 0 < low <= high")
    ratio = aug.crop_ratio
    if not isinstance(ratio, list | tuple) or len(ratio) != 2 or not 0 < _number("crop_ratio", ratio[0]) <= 1:
        raise ValueError(f"crop_ratio={ratio!r}: expected a [low, high] aspect range, 0 < low <= 1 <= high")
    if _number("crop_ratio", ratio[1]) < 1:
        raise ValueError(f"crop_ratio={ratio!r}: expected a [low, high] aspect range, 0 < low <= 1 <= high")
    aug.crop_ratio = [float(ratio[0]), float(ratio[1])]
    jpeg = aug.jpeg
    if isinstance(jpeg, bool) or not isinstance(jpeg, int) or not (jpeg == 0 or 1 <= jpeg <= JPEG_BEST):
        raise ValueError(
            f"jpeg={jpeg!r}: expected the lowest JPEG quality, an integer 1..{JPEG_BEST} (0 = off)"
        )


PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "light": Augment(rotation=5, zoom=0.05, translate=0.03, brightness=0.1, contrast=0.1),
    "medium": Augment(rotation=10, shear=0.1, zoom=0.1, translate=0.05, brightness=0.2, contrast=0.2),
    "heavy": Augment(
        rotation=15, shear=0.2, zoom=0.2, translate=0.08, brightness=0.3, contrast=0.3, crop_scale=0.8
    ),
    # light geometry + each acquisition shift at about the stress test's first severity (noise: its second)
    "acquisition": Augment(
        rotation=5,
        zoom=0.05,
        translate=0.03,
        brightness=0.2,
        contrast=0.3,
        gamma=0.4,
        blur=1.5,
        noise=10,
        jpeg=30,
        p_degrade=0.5,
    ),
    # scale + intensity (issue 20): crops down to 30 % of the area, exposure and contrast of other films
    "scale-intensity": Augment(
        crop_scale=0.3, crop_ratio=[3 / 4, 4 / 3], brightness=0.3, contrast=0.3, gamma=0.3
    ),
}


def get_augment(value: str | dict | Augment | None) -> Augment:
    """A preset name, a dict of :class:`Augment` fields (optionally with ``preset`` as the base), or None."""
    if value is None:
        return Augment()
    if isinstance(value, Augment):
        return value
    if isinstance(value, str):
        if value not in PRESETS:
            raise ValueError(f"unknown augmentation preset {value!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[value]
    data = dict(value)
    base = asdict(get_augment(data.pop("preset", "none")))
    unknown = set(data) - set(base)
    if unknown:
        raise ValueError(f"unknown augmentation parameter(s) {sorted(unknown)}; valid: {sorted(base)}")
    base.update(data)
    return Augment(**base)


def apply_mask(img: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """Black out boxes given in relative coordinates ``[x0, y0, x1, y1]`` (0..1); returns a copy.

    >>> apply_mask(np.full((4, 4), 255, np.uint8), [[0, 0.5, 0.5, 1]])[3, 0]
    0
    """
    if not boxes:
        return img
    out = img.copy()
    h, w = out.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"mask box {list(box)} must be [x0, y0, x1, y1], 0 <= x0 < x1 <= 1 (same for y)")
        out[int(round(y0 * h)) : int(round(y1 * h)), int(round(x0 * w)) : int(round(x1 * w))] = 0
    return out


def to_channels(img: np.ndarray, channels: str) -> np.ndarray:
    """Convert a decoded image to ``"gray"`` (H, W) or ``"rgb"`` (H, W, 3) uint8."""
    if channels == "gray":
        if img.ndim == 3:
            img = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round()
            img = img.clip(0, 255).astype(np.uint8)
        return img
    if channels == "rgb":
        return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img
    raise ValueError(f"channels must be 'gray' or 'rgb', got {channels!r}")


def resize_uint8(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` (squash, as the public X-ray copies are) with a good filter."""
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0))


def prepare(img: np.ndarray, info: ModelInfo, size: int | None = None) -> np.ndarray:
    """Mask, convert channels, resize and contrast-preprocess: the deterministic part that can be cached."""
    return prepare_pixels(img, size or info.input_size, info.channels, info.mask_boxes, info.preprocess)


def prepare_pixels(
    img: np.ndarray,
    size: int,
    channels: str,
    mask_boxes: Sequence[Sequence[float]] = (),
    preprocess: str = "none",
) -> np.ndarray:
    """:func:`prepare` from the record's fields (mask -> channels -> resize -> preprocess); the image
    cache keys on them."""
    resized = resize_uint8(to_channels(apply_mask(img, mask_boxes), channels), size)
    return contrast(resized, preprocess)


def normalise(arr: np.ndarray, info: ModelInfo) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) -> float tensor (3, H, W) scaled to [0, 1] then mean/std normalised."""
    import torch

    arr = np.ascontiguousarray(arr)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    t = t.unsqueeze(0).expand(3, -1, -1) if t.ndim == 2 else t.permute(2, 0, 1)
    t = t.float().div_(255.0)
    mean = torch.tensor(info.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(3, 1, 1)
    return (t - mean) / std


def to_model_input(img: np.ndarray, info: ModelInfo) -> torch.Tensor:
    """A decoded image -> normalised model input ``(3, S, S)``."""
    return normalise(prepare(img, info), info)


def batch_input(images: Sequence[np.ndarray], info: ModelInfo) -> torch.Tensor:
    """Several decoded images -> one batch ``(B, 3, S, S)``."""
    import torch

    return torch.stack([to_model_input(img, info) for img in images])


def augment_uint8(img: np.ndarray, aug: Augment, rng: np.random.Generator, pad: str = "black") -> np.ndarray:
    """Apply one random draw of ``aug`` to a prepared uint8 image (same size out).

    ``pad``: what fills the corners a rotation/shift uncovers: ``black`` or ``reflect`` (mirrored
    image content: no black wedges, used by offline ``augment`` so copies do not differ from originals
    by a pattern a model could learn).
    """
    from PIL import Image, ImageEnhance

    if aug.is_identity():
        return img
    pil = Image.fromarray(img)
    w, h = pil.size
    if aug.hflip and rng.random() < aug.hflip:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if pad == "reflect":
        m = max(w, h) // 2
        widths = ((m, m), (m, m)) + ((0, 0),) * (img.ndim - 2)
        big = _affine(Image.fromarray(np.pad(np.asarray(pil), widths, mode="reflect")), aug, rng, w, h)
        pil = big.crop((m, m, m + w, m + h))
    else:
        pil = _affine(pil, aug, rng, w, h)
    if aug.crop_scale < 1.0:
        box = crop_box(w, h, aug.crop_scale, aug.crop_ratio, rng)
        pil = Image.fromarray(shifts.crop(np.asarray(pil), *box))
    lo, hi = _factor_range(aug.brightness)
    if (lo, hi) != (1.0, 1.0):
        pil = ImageEnhance.Brightness(pil).enhance(rng.uniform(lo, hi))
    if aug.contrast:
        pil = ImageEnhance.Contrast(pil).enhance(rng.uniform(1 - aug.contrast, 1 + aug.contrast))
    return _degrade(np.asarray(pil), aug, rng)


def crop_box(
    w: int, h: int, scale: float, ratio: Sequence[float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """``(x0, y0, width, height)`` of a random resized crop of a ``w`` x ``h`` image.

    The area fraction is uniform in ``[scale, 1]``; the aspect (crop width/height over the image's)
    log-uniform in ``ratio`` narrowed to what fits at that area (``[area, 1/area]``), so every draw
    is inside the image with the drawn area, up to rounding down to whole pixels. ``ratio`` ``[1, 1]``
    draws no aspect (crops as before ``crop_ratio`` existed, draw for draw).
    """
    area = rng.uniform(scale, 1.0)
    aspect = 1.0
    if tuple(ratio) != (1.0, 1.0):
        lo, hi = max(float(ratio[0]), area), min(float(ratio[1]), 1.0 / area)
        aspect = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    cw = min(w, max(1, int(w * np.sqrt(area * aspect))))
    ch = min(h, max(1, int(h * np.sqrt(area / aspect))))
    return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch


def _degrade(img: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Gamma, then blur, noise and JPEG (each with probability ``p_degrade``), in acquisition order.

    The pixel math is :mod:`medxfer.data.shifts` (the stress test's). Only enabled ops draw from
    ``rng``, so augmentations without them give exactly the images they gave before these existed.
    """
    if aug.gamma:
        lo, hi = _gamma_range(aug.gamma)
        img = shifts.gamma(img, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    if aug.blur and rng.random() < aug.p_degrade:
        img = shifts.blur(img, rng.uniform(0.0, aug.blur))
    if aug.noise and rng.random() < aug.p_degrade:
        img = shifts.noise(img, rng.uniform(0.0, aug.noise), rng)
    if aug.jpeg and rng.random() < aug.p_degrade:
        img = shifts.jpeg(img, int(rng.integers(aug.jpeg, JPEG_BEST + 1)))
    return img


def _factor_range(value: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        return float(value[0]), float(value[1])
    return 1.0 - float(value), 1.0 + float(value)


def _gamma_range(value: float | Sequence[float]) -> tuple[float, float]:
    """``[low, high]`` as given, or ``exp(±value)`` for a fraction of log-gamma."""
    if isinstance(value, list | tuple):
        return float(value[0]), float(value[1])
    return float(np.exp(-float(value))), float(np.exp(float(value)))


def _affine(pil, aug: Augment, rng: np.random.Generator, w: int, h: int):  # noqa: ANN001, ANN202
    """Rotation, shear, zoom and translation about the image centre in one resampling."""
    import torchvision.transforms.functional as TF

    if not (aug.rotation or aug.shear or aug.zoom or aug.translate):
        return pil
    angle = rng.uniform(-aug.rotation, aug.rotation)
    shear = float(np.degrees(np.arctan(rng.uniform(-aug.shear, aug.shear))))
    scale = rng.uniform(1 - aug.zoom, 1 + aug.zoom)
    tx = int(round(rng.uniform(-aug.translate, aug.translate) * w))
    ty = int(round(rng.uniform(-aug.translate, aug.translate) * h))
    return TF.affine(pil, angle=angle, translate=[tx, ty], scale=scale, shear=[shear, 0.0])


def train_transform(info: ModelInfo, augment: str | dict | Augment | None, seed: int = 0) -> Callable:
    """A callable ``uint8 image -> (3, S, S) tensor`` for training (prepare, augment, normalise).

    Randomness comes from a per-call numpy Generator derived from torch's RNG, so DataLoader
    workers and resumed runs (which restore torch's RNG) stay reproducible.
    """
    aug = get_augment(augment)

    def transform(img: np.ndarray) -> torch.Tensor:
        import torch

        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()) + seed)
        return normalise(augment_uint8(prepare(img, info), aug, rng), info)

    return transform
