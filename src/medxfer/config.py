"""Typed training configuration: loaded from YAML, overridden by CLI flags, saved back into the run.

A config is a :class:`TrainConfig` of four parts (``data``, ``model``, ``train``, ``stages``).
Every field has a default fit for this project's small CPU machines, so an empty YAML trains
EfficientNet-Lite0 with its packaged ImageNet weights: a head-only stage, then fine-tuning.

Example::

    cfg = load_config("kermany-binary", overrides=["train.batch_size=16"])
    save_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

# ConfigError and validate live with the checks; imported from here by callers, as always
from medxfer.config_checks import ConfigError as ConfigError
from medxfer.config_checks import validate as validate
from medxfer.config_checks import validate_sizes
from medxfer.data.resolve import DataConfig  # the data section: defined with its one resolution path
from medxfer.recipes import RecipeError, did_you_mean, find_recipe


@dataclass
class ModelConfig:
    """Backbone, where its weights come from, and the head."""

    backbone: str = "efficientnet_lite0"
    weights: str = "default"  # default (the backbone's own) or a weights source (`medxfer models`)
    input_size: int | None = None  # None: the weights' own size
    preprocess: str = "none"  # none | equalize | clahe: in model.json, applied by data/transforms.prepare
    tta: bool = False  # in model.json: predict/evaluate/serve average the image and 4 small shifts by default
    head: dict[str, Any] = field(default_factory=lambda: {"kind": "linear", "hidden": 0, "dropout": 0.2})
    output: str = "softmax"  # softmax | sigmoid (binary only)


@dataclass
class StageConfig:
    """One training stage: how long, what is trainable, how fast.

    ``trainable``: ``head`` | ``all`` | ``last:K`` (the last K backbone blocks plus the head).
    ``lr``: a number or ``auto`` (LR range test, head stages only). ``backbone_lr_mult``: the backbone
    block nearest the head learns at ``lr * mult``, each earlier block ``lr_decay`` times slower
    (discriminative rates, fastai style). ``augment`` overrides the train augmentation for this stage.
    ``bn``: ``train`` (BatchNorm statistics of the trained blocks follow the new data) or ``frozen``
    (they keep the pretrained statistics; their scale/shift still learn). ``input_size``: the side
    this stage trains and validates at (progressive resizing: e.g. 160 px, then the final stage at
    the model's size; None = the model's size). The last stage must train at the model's size.
    """

    name: str = "stage"
    epochs: int = 1
    trainable: str = "head"
    lr: float | str = 1e-3
    backbone_lr_mult: float = 0.1
    lr_decay: float = 0.5
    augment: str | dict | None = None
    bn: str = "train"
    input_size: int | None = None


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
    keep: str = "best"  # best (the monitor's best epoch) | last (the final epoch: no choice made on val)
    early_stopping_patience: int | None = None  # epochs without improvement (None: off)
    seed: int = 0
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads (None: all cores)
    feature_cache: bool = True  # head-only stages without augmentation run on cached embeddings
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = "auto"  # auto (None): 16-mixed on GPU, bf16-mixed on a bf16 CPU, else 32-true
    channels_last: bool = True  # image batches in NHWC too (weights always are): faster, bench/RESULTS.md
    ema: float | None = None  # decay of an exponential moving average of the weights (saved model = EMA)
    swa_epochs: int | None = None  # saved model = uniform average of the weights after the last N epochs
    max_batches_per_epoch: int | None = None  # cap for quick runs (None: whole split)
    loggers: list[str] = field(default_factory=lambda: ["tensorboard", "csv"])  # + mlflow
    mlflow_uri: str | None = None  # None: a local file store RUN/mlruns (no server); or an MLflow URI


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


_TYPE_WORDS: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    type(None): "null",
    dict: "a mapping",
    list: "a list",
}


@cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of a config dataclass."""
    return get_type_hints(cls)


@cache
def _validator(annotation: Any) -> Any:
    """A pydantic ``TypeAdapter`` of ``annotation`` (pydantic imported on first use: the CLI starts light)."""
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    """``int | None`` -> ``(int, NoneType)``; a single type -> ``(type,)``."""
    return get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """``value`` if pydantic (strict: no ``"3"`` for 3, no ``true`` for 1) accepts it as ``annotation``,
    else a one-line ConfigError saying what was expected."""
    choices = _alternatives(annotation)
    if float in choices and isinstance(value, str) and value != "auto":
        try:  # YAML 1.1 reads 1e-4 as a string
            return float(value)
        except ValueError:
            pass
    from pydantic import ValidationError

    try:
        _validator(annotation).validate_python(value, strict=True)
    except ValidationError:
        words = (_TYPE_WORDS.get(get_origin(c) or c, getattr(c, "__name__", str(c))) for c in choices)
        raise ConfigError(f"{key}={value!r}: expected {' or '.join(words)}") from None
    return value


def _build(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    """``cls(**data)`` after checking every key and value type; ``where`` names the file."""
    label = f"{where}: {prefix}" if prefix else where
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {data!r}")
    known = _field_types(cls)
    unknown = set(data) - set(known)
    if unknown:
        hint = did_you_mean(sorted(unknown), list(known))
        raise ConfigError(f"{label}: unknown key(s) {sorted(unknown)}{hint}; valid: {sorted(known)}")
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        try:
            data[name] = _check_type(value, known[name], key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return cls(**data)


def from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data, checking every key."""
    data = dict(data or {})
    parts = {"data": DataConfig, "model": ModelConfig, "train": TrainOptions}
    built: dict[str, Any] = {}
    for key, cls in parts.items():
        if key in data:
            built[key] = _build(cls, _legacy(key, data.pop(key) or {}), where, key)
    if "stages" in data:
        stages = data.pop("stages") or []
        if not isinstance(stages, list):
            raise ConfigError(f"{where}: stages={stages!r}: expected a list of stages")
        built["stages"] = [_build(StageConfig, s, where, f"stages[{i}]") for i, s in enumerate(stages)]
    cfg = _build(TrainConfig, {**data, **built}, where)
    try:
        validate(cfg)
        _resolve_weights(cfg)
        validate_sizes(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return cfg


def _resolve_weights(cfg: TrainConfig) -> None:
    """``model.weights: default`` becomes the backbone's listed default (``medxfer models``)."""
    if cfg.model.weights != "default":
        return
    from medxfer.models.backbones import get_spec

    try:
        cfg.model.weights = get_spec(cfg.model.backbone).default_weights
    except ValueError as exc:
        raise ConfigError(f"model.backbone={cfg.model.backbone!r}: {exc}") from None


def _legacy(part: str, data: Any) -> Any:
    """Old keys still read: ``data.group_duplicates: true/false`` -> ``data.duplicates: group/keep``."""
    if part == "data" and isinstance(data, dict) and "group_duplicates" in data:
        data = dict(data)
        grouped = data.pop("group_duplicates")
        data.setdefault("duplicates", "group" if grouped else "keep")
    return data


def _expand(value: Any, key: str) -> Any:
    """Expand ``${VARS}`` (:func:`medxfer.io.expand_vars`: ``${MEDXFER_SHARED_DATA}`` defaults to
    ``../shared/data``); a data path built from a variable that does not exist names the variable."""
    from medxfer.io import SHARED_DATA_DEFAULT, SHARED_DATA_ENV, expand_vars

    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    expanded = expand_vars(value)
    path = expanded.split("?", 1)[0]
    path = path.split(":", 1)[1] if ":" in path and not Path(path).exists() else path
    if not Path(path).exists():
        shared = os.environ.get(SHARED_DATA_ENV)
        state = f"is {shared!r}" if shared else f"is not set, so {SHARED_DATA_DEFAULT} was used"
        hint = f"${SHARED_DATA_ENV} {state}" if SHARED_DATA_ENV in value else "check the ${VARIABLES} in it"
        raise ConfigError(f"{key}: {path} not found ({value!r}; {hint}); set it to the right folder")
    return expanded


def parse_override(override: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)``, the value parsed as YAML (``--set`` on the command line).

    >>> parse_override("train.batch_size=16")
    ('train.batch_size', 16)
    """
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, raw = override.split("=", 1)
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        return key, raw  # e.g. an unbalanced quote: keep the text, the type check names the key


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``a.b=value`` (value parsed as YAML) to nested plain data; ``stages.1.lr=1e-4`` indexes lists."""
    key, value = parse_override(override)
    parts = key.split(".")
    node: Any = data
    try:
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(parts[-1])] = value
        elif isinstance(node, dict):
            node[parts[-1]] = value
        else:
            raise TypeError(f"{node!r} has no keys")
    except (ValueError, IndexError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--set {override}: no such key {key!r} ({exc})") from None


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Read a YAML recipe (or start from defaults), apply ``key=value`` overrides, expand ``${VARS}``.

    Data specs resolve from the working directory; ``${MEDXFER_SHARED_DATA}`` defaults to ``../shared/data``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            p = find_recipe(path)
        except RecipeError as exc:
            raise ConfigError(str(exc)) from None
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    data = asdict(from_dict(data, where=str(path or "config")))
    for ov in overrides or []:
        apply_override(data, ov)
    cfg = from_dict(data, where=str(path or "config"))
    cfg.data.specs = _expand(cfg.data.specs, "data.specs")
    if cfg.data.splits:
        cfg.data.splits = _expand(cfg.data.splits, "data.splits")
    return cfg


def save_config(cfg: TrainConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML (atomically), data paths absolute (a run is read from anywhere)."""
    from medxfer.data.datasets import absolute_paths
    from medxfer.io import atomic_write_text

    data = cfg.to_dict()
    data["data"]["specs"], data["data"]["splits"] = absolute_paths(cfg.data.specs, cfg.data.splits)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
