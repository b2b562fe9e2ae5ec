"""Validation of a :class:`medxfer.config.TrainConfig`: values that cannot work are refused before
any training starts, with one line naming the key, the value and the valid choices.

Types are checked while the config is built (:func:`medxfer.config.from_dict`); this module checks
what types cannot say: choices, ranges, and how stages, sizes and training options fit together.
"""

from __future__ import annotations

from typing import Any

# A medxfer.config.TrainConfig; not imported, even for type checking: config imports this module
TrainConfig = Any

LOGGERS = ("tensorboard", "csv", "mlflow")
# Lightning's precision names (tests/training/test_levers.py checks them against Lightning's own list);
# ``auto`` picks one for the hardware (medxfer.models.precision.resolve_precision).
PRECISIONS = (
    "auto",
    "auto-bf16",
    "32-true",
    "32",
    "16-mixed",
    "16",
    "bf16-mixed",
    "bf16",
    "16-true",
    "bf16-true",
    "64-true",
    "64",
)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and valid choices."""


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` for values that cannot work (before any training starts)."""
    if not cfg.stages:
        raise ConfigError("stages is empty; give at least one stage")
    for i, s in enumerate(cfg.stages):
        ok = s.trainable in ("head", "all") or (s.trainable.startswith("last:") and s.trainable[5:].isdigit())
        if not ok:
            raise ConfigError(f"stages[{i}].trainable={s.trainable!r}; valid: head, all, last:K")
        if isinstance(s.lr, str) and s.lr != "auto":
            raise ConfigError(f"stages[{i}].lr={s.lr!r}; give a number or 'auto'")
        if s.epochs < 0 or s.bn not in ("train", "frozen"):
            raise ConfigError(f"stages[{i}]: epochs={s.epochs} must be >= 0, bn={s.bn!r} train or frozen")
    from medxfer.evaluate.monitors import monitors

    choices = {
        "train.optimizer": (cfg.train.optimizer, ("adamw", "adam", "sgd")),
        "train.scheduler": (cfg.train.scheduler, ("onecycle", "cosine", "constant")),
        "train.imbalance": (cfg.train.imbalance, ("none", "class_weights", "balanced_sampler")),
        "train.monitor": (cfg.train.monitor, tuple(monitors())),
        "train.keep": (cfg.train.keep, ("best", "last")),
        "model.output": (cfg.model.output, ("softmax", "sigmoid")),
        "model.preprocess": (cfg.model.preprocess, ("none", "equalize", "clahe")),
        "data.channels": (cfg.data.channels, ("auto", "gray", "rgb")),
        "data.duplicates": (cfg.data.duplicates, ("group", "drop-cross-class", "keep")),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key}={value!r}; valid: {', '.join(valid)}")
    unknown = [x for x in cfg.train.loggers if x not in LOGGERS]
    if unknown:
        raise ConfigError(f"train.loggers: unknown {unknown}; valid: {', '.join(LOGGERS)}")
    _validate_numbers(cfg)
    _validate_augment(cfg)
    _validate_averaging(cfg)


def _validate_numbers(cfg: TrainConfig) -> None:
    minimum = {
        "train.batch_size": (cfg.train.batch_size, 1),
        "data.limit_per_class": (cfg.data.limit_per_class, 1),
        "train.max_batches_per_epoch": (cfg.train.max_batches_per_epoch, 1),
        "model.input_size": (cfg.model.input_size, 8),
        "train.num_workers": (cfg.train.num_workers, 0),
        **{f"stages[{i}].input_size": (s.input_size, 8) for i, s in enumerate(cfg.stages)},
    }
    for key, (value, low) in minimum.items():
        if value is not None and value < low:
            raise ConfigError(f"{key}={value!r}: expected an integer >= {low}")
    for key, value in (("data.val", cfg.data.val), ("data.test", cfg.data.test)):
        if not 0 <= value < 1:
            raise ConfigError(f"{key}={value!r}: expected a fraction in [0, 1)")


def _validate_augment(cfg: TrainConfig) -> None:
    """Augmentation presets and parameters are checked here, not at the first augmented epoch."""
    from medxfer.data.transforms import get_augment

    where = [("train.augment", cfg.train.augment)]
    where += [(f"stages[{i}].augment", s.augment) for i, s in enumerate(cfg.stages) if s.augment is not None]
    for key, value in where:
        try:
            get_augment(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{key}={value!r}: {exc}") from None


def _validate_averaging(cfg: TrainConfig) -> None:
    """``train.precision`` and the weight averages (``train.ema``, ``train.swa_epochs``)."""
    t = cfg.train
    if t.precision is not None and str(t.precision) not in PRECISIONS:
        raise ConfigError(f"train.precision={t.precision!r}; valid: {', '.join(PRECISIONS)}")
    if t.ema is not None and not 0 <= t.ema < 1:
        raise ConfigError(f"train.ema={t.ema!r}: expected a decay in [0, 1) (e.g. 0.999), or null for off")
    if t.swa_epochs is not None and not 1 <= t.swa_epochs <= cfg.total_epochs:
        raise ConfigError(
            f"train.swa_epochs={t.swa_epochs!r}: expected an integer in 1..{cfg.total_epochs} (the epochs)"
        )
    if t.ema is not None and t.swa_epochs is not None:
        raise ConfigError("train.ema and train.swa_epochs are both set: choose one weight average")
    if (t.ema is not None or t.swa_epochs is not None) and t.keep != "last":
        raise ConfigError(
            f"train.keep={t.keep!r} with a weight average (train.ema/swa_epochs): set train.keep: last "
            "(the saved weights are the average at the end of training)"
        )


def validate_sizes(cfg: TrainConfig) -> None:
    """The last stage trains at the model's input size (``model.json`` keeps that size): progressive
    resizing may train earlier stages smaller, never the final weights. Needs resolved weights."""
    from medxfer.models.backbones import get_spec

    size = cfg.model.input_size or get_spec(cfg.model.backbone).preprocess(cfg.model.weights)[0]
    last = (
        max(i for i, s in enumerate(cfg.stages) if s.epochs > 0) if cfg.total_epochs else len(cfg.stages) - 1
    )
    final = cfg.stages[last].input_size
    if final is not None and final != size:
        raise ConfigError(
            f"stages[{last}].input_size={final}: the last stage must train at the model's input size {size} "
            f"(model.input_size); train earlier stages smaller, or set model.input_size: {final}"
        )
