"""Typed training configuration: loaded from YAML, overridden by CLI flags, saved back into the run.

A config is a :class:`TrainConfig` of four parts (``data``, ``model``, ``train``, ``stages``).
Every field has a default fit for this project's small CPU machines, so an empty YAML trains
EfficientNet-Lite0 with its packaged ImageNet weights: a head-only stage, then fine-tuning.

Example::

    cfg = load_config("configs/kermany-binary.yaml", overrides=["train.batch_size=16"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """Which images, which labels, which split."""

    specs: list[str] = field(default_factory=list)  # LAYOUT:PATH; ${VAR} expanded (e.g. MEDXFER_SHARED_DATA)
    task: str | None = None  # a named task of medxfer.data.datasets.TASKS
    label_map: dict[str, str | None] | None = None
    splits: str | None = None  # an existing splits.csv; else made with val/test/seed below
    val: float = 0.2
    test: float = 0.0
    seed: int = 0
    group_duplicates: bool = False  # near-duplicate images count as one patient when splitting
    limit_per_class: int | None = None  # train on at most N images per class (quick runs)
    channels: str = "auto"  # auto (from the data) | gray | rgb
    mask_boxes: list[list[float]] = field(default_factory=list)  # relative [x0, y0, x1, y1]


@dataclass
class ModelConfig:
    """Backbone, where its weights come from, and the head."""

    backbone: str = "efficientnet_lite0"
    weights: str = "packaged"  # imagenet | packaged | file:PATH | none
    input_size: int | None = None  # None: the weights' own size
    head: dict[str, Any] = field(default_factory=lambda: {"kind": "linear", "hidden": 0, "dropout": 0.2})
    output: str = "softmax"  # softmax | sigmoid (binary only)


@dataclass
class StageConfig:
    """One training stage: how long, what is trainable, how fast.

    ``trainable``: ``head`` | ``all`` | ``last:K`` (the last K backbone blocks plus the head).
    ``lr``: a number or ``auto`` (LR range test, head stages only). ``backbone_lr_mult``: the backbone
    block nearest the head learns at ``lr * mult``, each earlier block ``lr_decay`` times slower
    (discriminative rates, fastai style). ``augment`` overrides the train augmentation for this stage.
    """

    name: str = "stage"
    epochs: int = 1
    trainable: str = "head"
    lr: float | str = 1e-3
    backbone_lr_mult: float = 0.1
    lr_decay: float = 0.5
    augment: str | dict | None = None


@dataclass
class TrainOptions:
    """Optimisation, regularisation, monitoring and hardware."""

    batch_size: int = 32
    optimizer: str = "adamw"  # adamw | adam | sgd
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "onecycle"  # onecycle | cosine | constant (per stage)
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.0
    imbalance: str = "class_weights"  # none | class_weights | balanced_sampler
    grad_clip: float | None = 1.0
    augment: str | dict = "light"
    monitor: str = "val_auc"  # val_auc | val_loss | val_acc | val_f1
    early_stopping_patience: int | None = None  # epochs without improvement (None: off)
    seed: int = 0
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads (None: all cores)
    feature_cache: bool = True  # head-only stages without augmentation run on cached embeddings
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None  # None: 16-mixed on GPU, 32 on CPU
    max_batches_per_epoch: int | None = None  # cap for quick runs (None: whole split)


def default_stages() -> list[StageConfig]:
    """fastai ``fine_tune`` shape: head only, then the whole network at lower, discriminative rates."""
    return [
        StageConfig(name="head", epochs=2, trainable="head", lr=2e-3, augment="none"),
        StageConfig(name="finetune", epochs=2, trainable="all", lr=5e-4, backbone_lr_mult=0.2),
    ]


@dataclass
class TrainConfig:
    """The whole recipe of one training run."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainOptions = field(default_factory=TrainOptions)
    stages: list[StageConfig] = field(default_factory=default_stages)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and valid choices."""


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(known)}")
    # YAML 1.1 reads 1e-4 as a string: numbers typed as float are coerced here.
    for name, value in data.items():
        if isinstance(value, str) and "float" in str(known[name].type) and value != "auto":
            try:
                data[name] = float(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {name}={value!r} is not a number") from exc
    return cls(**data)


def from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data, checking every key."""
    data = dict(data or {})
    parts = {
        "data": DataConfig,
        "model": ModelConfig,
        "train": TrainOptions,
    }
    built: dict[str, Any] = {}
    for key, cls in parts.items():
        if key in data:
            built[key] = _build(cls, data.pop(key) or {}, f"{where}: {key}")
    if "stages" in data:
        stages = data.pop("stages") or []
        built["stages"] = [_build(StageConfig, s, f"{where}: stages[{i}]") for i, s in enumerate(stages)]
    cfg = _build(TrainConfig, {**data, **built}, where)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` for values that cannot work (before any training starts)."""
    if not cfg.stages:
        raise ConfigError("config: stages is empty; give at least one stage")
    for i, s in enumerate(cfg.stages):
        ok = s.trainable in ("head", "all") or (s.trainable.startswith("last:") and s.trainable[5:].isdigit())
        if not ok:
            raise ConfigError(f"stages[{i}].trainable={s.trainable!r}; valid: head, all, last:K")
        if isinstance(s.lr, str) and s.lr != "auto":
            raise ConfigError(f"stages[{i}].lr={s.lr!r}; give a number or 'auto'")
        if s.epochs < 0:
            raise ConfigError(f"stages[{i}].epochs={s.epochs} must be >= 0")
    from medxfer.evaluate.monitors import monitors

    choices = {
        "train.optimizer": (cfg.train.optimizer, ("adamw", "adam", "sgd")),
        "train.scheduler": (cfg.train.scheduler, ("onecycle", "cosine", "constant")),
        "train.imbalance": (cfg.train.imbalance, ("none", "class_weights", "balanced_sampler")),
        "train.monitor": (cfg.train.monitor, tuple(monitors())),
        "model.output": (cfg.model.output, ("softmax", "sigmoid")),
        "data.channels": (cfg.data.channels, ("auto", "gray", "rgb")),
    }
    for key, (value, valid) in choices.items():
        if value not in valid:
            raise ConfigError(f"{key}={value!r}; valid: {', '.join(valid)}")


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        from medxfer.io import expand_vars

        return expand_vars(value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``a.b=value`` (value parsed as YAML) to nested plain data; ``stages.1.lr=1e-4`` indexes lists."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, raw = override.split("=", 1)
    value = yaml.safe_load(raw)
    parts = key.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Read a YAML recipe (or start from defaults), apply ``key=value`` overrides, expand ``${VARS}``.

    Data specs are resolved relative to the working directory; ``${MEDXFER_SHARED_DATA}`` defaults to
    ``../shared/data`` when the variable is unset.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    data = asdict(from_dict(data, where=str(path or "config")))
    for ov in overrides or []:
        apply_override(data, ov)
    data["data"]["specs"] = _expand(data["data"]["specs"])
    if data["data"].get("splits"):
        data["data"]["splits"] = _expand(data["data"]["splits"])
    return from_dict(data, where=str(path or "config"))


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML (atomically)."""
    from medxfer.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
