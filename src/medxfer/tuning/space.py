"""Search spaces: config override key -> distribution, read from YAML, sampled by an Optuna trial.

Example::

    space = load_space(None, "fast")            # the shipped default
    params = suggest(trial, space)               # {"stages.0.lr": 0.003, ...}
    cfg = apply_params(base_cfg, params)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import optuna

    from medxfer.config import TrainConfig

TYPES = ("float", "int", "categorical")
MODES = ("full", "fast")


@dataclass
class Dimension:
    """One searched key: float/int (``low``, ``high``, ``log``, ``step``) or categorical (``choices``)."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


def _dimension(key: str, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, dict) or spec.get("type") not in TYPES:
        raise ValueError(f"{where}: {key}: give a mapping with type one of {', '.join(TYPES)}; got {spec!r}")
    known = {"type", "low", "high", "log", "step", "choices"}
    if set(spec) - known:
        raise ValueError(
            f"{where}: {key}: unknown field(s) {sorted(set(spec) - known)}; valid: {sorted(known)}"
        )
    if spec["type"] == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: {key}: categorical needs a non-empty list `choices`")
        return Dimension(key, "categorical", choices=choices)
    try:
        low, high = float(spec["low"]), float(spec["high"])  # YAML 1.1 reads 1e-4 as a string
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {key}: {spec['type']} needs numeric `low` and `high`") from exc
    if not low <= high or (spec.get("log") and low <= 0):
        raise ValueError(f"{where}: {key}: need low <= high (and low > 0 with log); got {low}, {high}")
    step = float(spec["step"]) if spec.get("step") is not None else None
    return Dimension(key, spec["type"], low, high, bool(spec.get("log", False)), step)


def default_space_path() -> Path:
    """The search space shipped with the package (``medxfer/tune_space.yaml``)."""
    return Path(str(resources.files("medxfer") / "tune_space.yaml"))


def load_space(path: str | os.PathLike[str] | None, mode: str = "full") -> list[Dimension]:
    """Read the ``mode`` section (``full``/``fast``) of a space YAML (default: the shipped one).

    A file without ``full``/``fast`` sections is taken as one flat space for any mode.
    """
    if mode not in MODES:
        raise ValueError(f"search mode {mode!r}; valid: {', '.join(MODES)}")
    p = Path(path) if path is not None else default_space_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: search space file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of key -> distribution")
    if set(data) & set(MODES):
        if mode not in data:
            raise ValueError(f"{p}: no `{mode}` section; sections: {sorted(data)}")
        data = data[mode] or {}
    dims = [_dimension(str(k), v, str(p)) for k, v in data.items()]
    if not dims:
        raise ValueError(f"{p}: the {mode} search space is empty")
    return dims


def suggest(trial: optuna.Trial, space: list[Dimension]) -> dict[str, Any]:
    """Sample every dimension of ``space`` with ``trial``; returns ``{key: value}``."""
    out: dict[str, Any] = {}
    for d in space:
        if d.type == "categorical":
            out[d.key] = trial.suggest_categorical(d.key, d.choices)  # type: ignore[arg-type]
        elif d.type == "int":
            step = int(d.step or 1)
            out[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high), step=step, log=d.log)  # type: ignore[arg-type]
        else:
            out[d.key] = trial.suggest_float(d.key, d.low, d.high, step=d.step, log=d.log)  # type: ignore[arg-type]
    return out


def params_to_overrides(params: dict[str, Any]) -> list[str]:
    """``{key: value}`` -> ``["key=value", ...]`` for :func:`medxfer.config.load_config` (JSON is YAML).

    ``model.head.hidden`` also sets the head kind: ``mlp`` when > 0, ``linear`` when 0.
    """
    overrides = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    if "model.head.hidden" in params:
        overrides.append(f"model.head.kind={'mlp' if int(params['model.head.hidden']) > 0 else 'linear'}")
    return overrides


def apply_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """A copy of ``cfg`` with ``params`` applied; raises ConfigError naming a key that does not exist."""
    from medxfer.config import ConfigError, apply_override, from_dict

    data = cfg.to_dict()
    for ov in params_to_overrides(params):
        key = ov.split("=", 1)[0]
        try:
            apply_override(data, ov)
        except (IndexError, ValueError, TypeError) as exc:
            raise ConfigError(f"search space key {key!r} does not fit the config ({exc})") from exc
    return from_dict(data, where="tuned config")


def space_summary(space: list[Dimension]) -> list[dict[str, Any]]:
    """Plain data of a space (for summaries)."""
    return [{k: v for k, v in asdict(d).items() if v not in (None, False)} for d in space]
