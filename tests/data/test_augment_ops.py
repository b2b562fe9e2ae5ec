"""Acquisition augmentation (gamma, blur, noise, JPEG): each op does what it says, off means off."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from medxfer.config import ConfigError, load_config
from medxfer.data import shifts
from medxfer.data.transforms import PRESETS, Augment, augment_uint8, get_augment
from medxfer.data.transforms import crop_box as crop_box_fn


def _texture(shape: tuple[int, ...] = (96, 96), seed: int = 0) -> np.ndarray:
    """Mid-grey texture with fine detail (no clipping at 0/255 for moderate noise)."""
    return np.random.default_rng(seed).integers(60, 196, shape, dtype=np.uint8)


def _high_freq(img: np.ndarray) -> float:
    x = img.astype(np.float64)
    return float(np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean())


def test_noise_raises_the_sd_by_the_drawn_amount() -> None:
    flat = np.full((200, 200), 128, np.uint8)
    aug = Augment(noise=20, p_degrade=1.0)
    sds = []
    for seed in range(12):
        out = augment_uint8(flat, aug, np.random.default_rng(seed))
        mirror = np.random.default_rng(seed)
        mirror.random()  # the p_degrade draw
        drawn = mirror.uniform(0.0, 20.0)
        assert out.astype(float).std() == pytest.approx(drawn, rel=0.05, abs=0.3)
        assert out.astype(float).mean() == pytest.approx(128.0, abs=0.3)
        sds.append(drawn)
    assert min(sds) < 8 < 12 < max(sds)  # the sd is drawn per image over [0, 20]


def test_blur_lowers_high_frequency_energy_and_scales_with_size() -> None:
    img = _texture()
    aug = Augment(blur=2.0, p_degrade=1.0)
    ratios = [
        _high_freq(augment_uint8(img, aug, np.random.default_rng(s))) / _high_freq(img) for s in range(8)
    ]
    assert max(ratios) <= 1.0 and min(ratios) < 0.5

    # sigma is given at 224 px: the same draw blurs a 448 px edge twice as wide
    def width(side: int) -> int:
        step = np.zeros((side, side), np.uint8)
        step[:, side // 2 :] = 255
        row = augment_uint8(step, Augment(blur=3.0, p_degrade=1.0), np.random.default_rng(1))[side // 2]
        return int(((row > 5) & (row < 250)).sum())

    assert width(448) == pytest.approx(2 * width(224), abs=2) and width(224) >= 4


def test_gamma_maps_mid_grey_as_computed() -> None:
    grey = np.array([[0, 128, 255]], np.uint8)
    fixed = augment_uint8(grey, Augment(gamma=[2.0, 2.0]), np.random.default_rng(0))
    assert fixed.tolist() == [[0, round(255 * (128 / 255) ** 2), 255]]  # 64
    mids = [int(augment_uint8(grey, Augment(gamma=0.4), np.random.default_rng(s))[0, 1]) for s in range(40)]
    lo, hi = 255 * (128 / 255) ** np.exp(0.4), 255 * (128 / 255) ** np.exp(-0.4)  # 91.4 .. 161.9
    assert lo - 0.5 <= min(mids) < 115 and 141 < max(mids) <= hi + 0.5  # darker and lighter mid-tones


def test_jpeg_changes_the_image_keeps_shape_and_dtype_and_lower_quality_hurts_more() -> None:
    for shape in ((64, 80), (64, 80, 3)):
        img = _texture(shape)
        for seed in range(4):
            out = augment_uint8(img, Augment(jpeg=10, p_degrade=1.0), np.random.default_rng(seed))
            assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    img = _texture((64, 80))

    def error(lowest: int) -> float:
        aug = Augment(jpeg=lowest, p_degrade=1.0)
        return float(
            np.mean(
                [
                    np.abs(augment_uint8(img, aug, np.random.default_rng(s)) - img.astype(int)).mean()
                    for s in range(10)
                ]
            )
        )

    assert error(5) > 1.5 * error(90)


def test_p_degrade_gates_blur_noise_and_jpeg() -> None:
    img = _texture()
    aug = Augment(blur=2.0, noise=10, jpeg=20)
    assert augment_uint8(img, replace(aug, p_degrade=0.0), np.random.default_rng(0)) is img
    changed = [not np.array_equal(augment_uint8(img, aug, np.random.default_rng(s)), img) for s in range(40)]
    assert 25 < sum(changed) < 40  # p = 0.5 each: 7 in 8 images get at least one


def test_identity_when_off_and_seeded_determinism() -> None:
    img = _texture((50, 60, 3))
    for aug in (Augment(), Augment(p_degrade=0.9), Augment(noise=5, p_degrade=0.0)):
        assert aug.is_identity() and augment_uint8(img, aug, np.random.default_rng(0)) is img
    assert not Augment(gamma=0.2).is_identity() and not Augment(jpeg=50).is_identity()
    acq = PRESETS["acquisition"]
    a = augment_uint8(img, acq, np.random.default_rng([3, 1, 7]))
    assert np.array_equal(a, augment_uint8(img, acq, np.random.default_rng([3, 1, 7])))
    assert not np.array_equal(a, augment_uint8(img, acq, np.random.default_rng([3, 1, 8])))


# the presets as they were before the acquisition fields: runs trained with them must not change
OLD_PRESETS = {
    "none": {},
    "light": {"rotation": 5, "zoom": 0.05, "translate": 0.03, "brightness": 0.1, "contrast": 0.1},
    "medium": {
        "rotation": 10,
        "shear": 0.1,
        "zoom": 0.1,
        "translate": 0.05,
        "brightness": 0.2,
        "contrast": 0.2,
    },
    "heavy": {
        "rotation": 15,
        "shear": 0.2,
        "zoom": 0.2,
        "translate": 0.08,
        "brightness": 0.3,
        "contrast": 0.3,
    }
    | {"crop_scale": 0.8},
}


@pytest.mark.parametrize("name", sorted(OLD_PRESETS))
def test_old_presets_are_unchanged_and_never_degrade(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PRESETS[name] == Augment(**OLD_PRESETS[name])
    for op in ("gamma", "blur", "noise", "jpeg"):
        monkeypatch.setattr(shifts, op, lambda *a, _op=op, **k: pytest.fail(f"{name} called {_op}"))
    img = _texture((64, 64))
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a = augment_uint8(img, PRESETS[name], rng_a)
    b = augment_uint8(img, replace(PRESETS[name], p_degrade=0.1), rng_b)
    assert np.array_equal(a, b) and rng_a.random() == rng_b.random()  # p_degrade draws nothing when off


def test_acquisition_preset_is_light_geometry_without_flips() -> None:
    acq, light = asdict(PRESETS["acquisition"]), asdict(PRESETS["light"])
    assert {k: acq[k] for k in ("rotation", "shear", "zoom", "translate", "crop_scale")} == {
        k: light[k] for k in ("rotation", "shear", "zoom", "translate", "crop_scale")
    }
    assert acq["hflip"] == 0 and all(
        acq[k] for k in ("brightness", "contrast", "gamma", "blur", "noise", "jpeg")
    )
    assert get_augment({"preset": "acquisition", "noise": 20}).noise == 20


BAD_AUGMENT = [
    ("{noise: -3}", "noise=-3: expected a number >= 0"),
    ("{jpeg: 200}", "jpeg=200: expected the lowest JPEG quality, an integer 1..95"),
    ("{jpeg: 30.5}", "jpeg=30.5"),
    ("{blur: fuzzy}", "blur='fuzzy': expected a number"),
    ("{gamma: [2, 1]}", "gamma=[2, 1]: expected a fraction or a [low, high] range, 0 < low <= high"),
    ("{gamma: 1.5}", "gamma=1.5: expected a number >= 0 and <= 1.0"),
    ("{p_degrade: 2}", "p_degrade=2: expected a number >= 0 and <= 1.0"),
    ("{preset: acquisition, nosie: 5}", "unknown augmentation parameter(s) ['nosie']"),
]


@pytest.mark.parametrize(("value", "message"), BAD_AUGMENT, ids=[b[0] for b in BAD_AUGMENT])
def test_bad_augment_values_name_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"train.augment={value}"])
    assert "train.augment={" in str(err.value) and message in str(err.value)


def test_crop_box_respects_scale_and_aspect_bounds() -> None:
    rng = np.random.default_rng(0)
    w = h = 200
    areas, aspects = [], []
    for _ in range(2000):
        x0, y0, cw, ch = crop_box_fn(w, h, 0.3, [3 / 4, 4 / 3], rng)
        assert 0 <= x0 and x0 + cw <= w and 0 <= y0 and y0 + ch <= h  # inside the image
        areas.append(cw * ch / (w * h))
        aspects.append(cw / ch)
    # the drawn area, rounded down to whole pixels (at most one pixel per side lost)
    assert min(areas) >= 0.3 * (1 - 2 / (200 * np.sqrt(0.3))) - 1e-9 and max(areas) <= 1.0
    assert min(aspects) >= 0.75 * (1 - 0.02) and max(aspects) <= 4 / 3 * (1 + 0.02)
    assert min(areas) < 0.33 and max(areas) > 0.97  # the whole range is used
    assert min(aspects) < 0.8 and max(aspects) > 1.25


def test_crop_ratio_one_crops_as_before_and_square_crops_keep_aspect() -> None:
    from medxfer.data.shifts import crop

    img = _texture((64, 64))
    a = augment_uint8(img, Augment(crop_scale=0.5), np.random.default_rng(4))
    ref = np.random.default_rng(4)  # the draws of the crop before crop_ratio existed
    area = ref.uniform(0.5, 1.0)
    side = int(64 * np.sqrt(area))
    x0, y0 = ref.integers(0, 64 - side + 1), ref.integers(0, 64 - side + 1)
    assert np.array_equal(a, crop(img, int(x0), int(y0), side, side))
    assert np.array_equal(crop(img, 0, 0, 64, 64), img)  # the whole image is the image


def test_scale_intensity_identity_when_amounts_are_zero() -> None:
    img = _texture((48, 48))
    zero = Augment(crop_scale=1.0, crop_ratio=[0.75, 4 / 3], brightness=0.0, contrast=0.0, gamma=0.0)
    assert zero.is_identity() and augment_uint8(img, zero, np.random.default_rng(0)) is img
    assert not Augment(crop_scale=0.9, crop_ratio=[0.75, 4 / 3]).is_identity()


def test_scale_intensity_preset_draws_within_its_ranges_without_flips() -> None:
    preset = get_augment("scale-intensity")
    assert (preset.crop_scale, preset.crop_ratio) == (0.3, [0.75, 4 / 3])
    assert (preset.brightness, preset.contrast, preset.gamma, preset.hflip) == (0.3, 0.3, 0.3, 0.0)
    assert not (preset.rotation or preset.shear or preset.zoom or preset.translate or preset.blur)
    # a flat image: crop and contrast change nothing, so the output is gain then gamma of 128
    flat = np.full((32, 32), 128, np.uint8)
    values = {int(augment_uint8(flat, preset, np.random.default_rng(s))[0, 0]) for s in range(300)}
    lowest = shifts.gamma(np.array([[round(128 * 0.7)]], np.uint8), np.exp(0.3))[0, 0]
    highest = shifts.gamma(np.array([[round(128 * 1.3)]], np.uint8), np.exp(-0.3))[0, 0]
    assert lowest - 1 <= min(values) and max(values) <= highest + 1
    assert min(values) < 75 and max(values) > 175  # both ends of the ranges are reached
    marker = np.zeros((32, 32), np.uint8)
    marker[:, :4] = 255  # a left-edge marker: never appears on the right (no flip)
    for s in range(50):
        out = augment_uint8(marker, preset, np.random.default_rng(s))
        assert out[:, -4:].max() < 255 * 0.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{crop_ratio: [1.2, 1.5]}", "crop_ratio=[1.2, 1.5]: expected a [low, high] aspect range"),
        ("{crop_ratio: 0.75}", "crop_ratio=0.75: expected a [low, high] aspect range, 0 < low <= 1 <= high"),
        ("{crop_scale: 1.5}", "crop_scale=1.5: expected a number >= 0 and <= 1.0"),
    ],
)
def test_bad_crop_values_name_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"train.augment={value}"])
    assert message in str(err.value) and "\n" not in str(err.value)
