"""The schema of ``model.json``: every field's type and range, checked when a run is loaded.

A run folder is something a user can hand-edit or copy from elsewhere; a wrong value must stop
``predict`` / ``serve`` / ``export`` at load time with the file and field named, not give NaN
probabilities, a decision that never changes, or a 500 on every request.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 2048
RESIZE_MODES = ("squash",)


class HeadSchema(BaseModel):
    """``head``: the classification head (see :func:`medxfer.models.backbones.make_head`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["linear", "mlp"] = "linear"
    hidden: int = Field(0, ge=0, le=65536)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def _known_backbone(value: str) -> str:
    from medxfer.models.backbones import get_spec

    get_spec(value)  # a ValueError naming the registered backbones
    return value


def _check_mean(value: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) and -1.0 <= v <= 2.0 for v in value):
        raise ValueError(f"mean values are fractions of the 0..1 pixel range, got {list(value)}")
    return value


def _check_std(value: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) and 1e-6 < v <= 10.0 for v in value):
        raise ValueError(f"std values must be > 0 (they divide the pixels), got {list(value)}")
    return value


class MemberSchema(BaseModel):
    """One entry of ``members`` (an ensemble run, ``medxfer ensemble``): the network of one member.

    Its weights are the ``members.<i>.*`` tensors of ``model.safetensors``; ``run`` and ``metrics``
    record where it came from (provenance only).
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    backbone: str = Field(min_length=1)
    weights: str = Field(min_length=1)
    head: HeadSchema = Field(default_factory=HeadSchema)
    run: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    # the member's own input (it resizes and re-normalises the ensemble's); None: the ensemble's
    input_size: int | None = Field(None, ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @field_validator("mean")
    @classmethod
    def _mean(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return value if value is None else _check_mean(value)

    @field_validator("std")
    @classmethod
    def _std(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return value if value is None else _check_std(value)

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, value: str) -> str:
        return _known_backbone(value)


class ModelInfoSchema(BaseModel):
    """``model.json`` as written by ``medxfer train`` (unknown keys are ignored, as on load)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    class_names: list[str] = Field(min_length=2, max_length=1000)
    backbone: str = Field(min_length=1)
    weights: str = Field(min_length=1)
    input_size: int = Field(ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: Literal["gray", "rgb"] = "gray"
    head: HeadSchema = Field(default_factory=HeadSchema)
    output: Literal["softmax", "sigmoid"] = "softmax"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    threshold_method: str = "default"
    temperature: float = Field(1.0, gt=0.0, le=1000.0, allow_inf_nan=False)  # local calibration
    mask_boxes: list[tuple[float, float, float, float]] = Field(default_factory=list, max_length=64)
    resize: Literal[RESIZE_MODES] = "squash"  # type: ignore[valid-type]
    preprocess: Literal["none", "equalize", "clahe"] = "none"  # medxfer.data.contrast.PREPROCESS
    metrics: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    members: list[MemberSchema] = Field(default_factory=list)  # an ensemble run (medxfer ensemble)

    @field_validator("class_names")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not n.strip() for n in value):
            raise ValueError("class names must be non-empty")
        if len(set(value)) != len(value):
            raise ValueError(f"class names must be unique, got {value}")
        return value

    @field_validator("mean")
    @classmethod
    def _mean(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _check_mean(value)

    @field_validator("std")
    @classmethod
    def _std(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _check_std(value)

    @field_validator("mask_boxes")
    @classmethod
    def _boxes(cls, value: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
        for box in value:
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise ValueError(f"box {list(box)} must be x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 (same for y)")
        return value

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, value: str) -> str:
        return _known_backbone(value)

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[MemberSchema]) -> list[MemberSchema]:
        from medxfer.models.ensemble import MAX_MEMBERS

        if value and not 2 <= len(value) <= MAX_MEMBERS:
            raise ValueError(
                f"an ensemble has 2 to {MAX_MEMBERS} members, got {len(value)} "
                "(leave 'members' out for one network)"
            )
        return value

    @model_validator(mode="after")
    def _sigmoid_is_binary(self) -> ModelInfoSchema:
        if self.output == "sigmoid" and len(self.class_names) != 2:
            raise ValueError(f"output 'sigmoid' needs exactly 2 class_names, got {len(self.class_names)}")
        return self


def validate_model_json(text: bytes | str) -> dict[str, Any]:
    """Parse and validate ``model.json`` text; returns the dict, raises ValueError naming the field(s).

    >>> validate_model_json('{"class_names": ["a", "b"], "backbone": "custom_cnn", "weights": "none",'
    ...     ' "input_size": 0, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}')
    Traceback (most recent call last):
    ...
    ValueError: field 'input_size': Input should be greater than or equal to 16 (got 0)
    """
    try:
        info = ModelInfoSchema.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    data = info.model_dump()
    data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
    data["mask_boxes"] = [list(b) for b in data["mask_boxes"]]
    return data


ECHO_CHARS = 200  # an error quotes at most this much of the file


def _clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (a 200 kB model.json is not echoed).

    >>> _clip("x" * 300, 10)
    'xxxxxxxxxx... (300 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        path = err.get("loc", ())
        loc = ".".join(str(p) for p in path) or "(file)"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        given = err.get("input")
        if path and path[0] in ("mean", "std") and err.get("type") in ("missing", "too_long", "tuple_type"):
            loc, msg = str(path[0]), "needs exactly 3 numbers (R, G, B)"
        quiet = err.get("type") == "missing" or isinstance(given, dict) or "got" in msg
        parts.append(f"field '{loc}': {_clip(msg)}" + ("" if quiet else f" (got {_clip(repr(given))})"))
    return "; ".join(parts[:5]) + (f"; ... {len(parts) - 5} more" if len(parts) > 5 else "")
