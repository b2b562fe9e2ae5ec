"""The parts of ``model.json`` (:class:`medxfer.runs.ModelInfo`): its networks, their checks, the old format.

A run folder is something a user can hand-edit or copy from elsewhere; a wrong value must stop
``predict`` / ``serve`` / ``export`` at load time with the file and field named, not give NaN
probabilities, a decision that never changes, or a 500 on every request. Scalars are strict (``"224"``
is not an input size, ``true`` not a threshold); JSON arrays become the tuples of the record.

One network is ``network: {backbone, weights, head}``; an ensemble is ``members: [{backbone, weights,
head, run, metrics, input_size, mean, std}, ...]`` instead (:func:`migrate_legacy` reads the flat format
that runs written before both shapes existed carry).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

if TYPE_CHECKING:
    from medxfer.models.backbones import Classifier

MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 2048
RESIZE_MODES = ("squash",)
Triple = tuple[StrictFloat, StrictFloat, StrictFloat]  # R, G, B
Box = tuple[StrictFloat, StrictFloat, StrictFloat, StrictFloat]  # x0, y0, x1, y1 (fractions of the image)


class HeadSpec(BaseModel):
    """``head``: the classification head (see :func:`medxfer.models.backbones.make_head`)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["linear", "mlp"] = "linear"
    hidden: StrictInt = Field(0, ge=0, le=65536)
    dropout: StrictFloat = Field(0.0, ge=0.0, lt=1.0)


class NetworkSpec(BaseModel):
    """``network``: the one network of a run (``weights``: where its backbone came from, provenance only;
    the trained weights are ``model.safetensors``).

    Example: ``NetworkSpec(backbone="efficientnet_lite0", weights="packaged")``.
    """

    model_config = ConfigDict(extra="forbid")
    backbone: StrictStr = Field(min_length=1)
    weights: StrictStr = Field(min_length=1)
    head: HeadSpec = Field(default_factory=HeadSpec)

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, value: str) -> str:
        from medxfer.models.backbones import get_spec

        get_spec(value)  # a ValueError naming the registered backbones
        return value

    def build(self, num_classes: int, output: str = "softmax") -> Classifier:
        """This network, untrained (its trained weights are loaded by the caller)."""
        from medxfer.models.backbones import build_model

        return build_model(
            self.backbone, num_classes, weights="none", head=self.head.model_dump(), output=output
        )

    def preprocessing(
        self, input_size: int | None = None
    ) -> tuple[int, tuple[float, float, float], tuple[float, float, float]]:
        """``(input_size, mean, std)`` of these weights (pretrained weights with a card carry their own,
        else the backbone's), read from the weights, never retyped; ``input_size`` overrides the size."""
        from medxfer.models.backbones import get_spec
        from medxfer.models.weights import card_preprocess

        size, mean, std = card_preprocess(self.weights) or get_spec(self.backbone).preprocess(self.weights)
        return int(input_size or size), _three(mean), _three(std)


class MemberSpec(NetworkSpec):
    """One entry of ``members`` (an ensemble run, ``medxfer ensemble``): the network of one member.

    Its weights are the ``members.<i>.*`` tensors of ``model.safetensors``; ``run`` and ``metrics``
    record where it came from (provenance only). ``input_size``/``mean``/``std``: the member's own input
    (it resizes and re-normalises the ensemble's); None (ensembles written before per-member sizes):
    the ensemble's.
    """

    run: StrictStr = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    input_size: StrictInt | None = Field(None, ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE)
    mean: Triple | None = None
    std: Triple | None = None

    @field_validator("mean")
    @classmethod
    def _mean(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return value if value is None else check_mean(value)

    @field_validator("std")
    @classmethod
    def _std(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return value if value is None else check_std(value)


def check_mean(value: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) and -1.0 <= v <= 2.0 for v in value):
        raise ValueError(f"mean values are fractions of the 0..1 pixel range, got {list(value)}")
    return value


def check_std(value: tuple[float, ...]) -> tuple[float, ...]:
    if not all(math.isfinite(v) and 1e-6 < v <= 10.0 for v in value):
        raise ValueError(f"std values must be > 0 (they divide the pixels), got {list(value)}")
    return value


def check_boxes(value: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    for box in value:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"box {list(box)} must be x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 (same for y)")
    return value


def _three(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


LEGACY_NETWORK = ("backbone", "weights", "head")  # top-level fields of the flat format


def migrate_legacy(data: Any) -> Any:
    """The flat ``model.json`` of older runs -> today's shape (anything else is returned as it is).

    Flat: ``backbone``/``weights``/``head`` at the top level; an ensemble also had ``members``, the
    top-level three then a copy of the first member's. Today: ``network`` for one network, ``members``
    alone for an ensemble.

    >>> migrate_legacy({"class_names": ["a", "b"], "backbone": "custom_cnn", "weights": "none"})
    {'class_names': ['a', 'b'], 'network': {'backbone': 'custom_cnn', 'weights': 'none'}}
    """
    if not isinstance(data, dict) or not any(k in data for k in LEGACY_NETWORK):
        return data
    if "network" in data:
        raise ValueError(
            f"'network' and the old top-level {', '.join(k for k in LEGACY_NETWORK if k in data)}: "
            "keep 'network' only"
        )
    out = {k: v for k, v in data.items() if k not in LEGACY_NETWORK}
    if out.get("members"):  # an old ensemble: the top-level fields were its first member's
        return out
    out.pop("members", None)  # an empty list: one network
    return {**out, "network": {k: data[k] for k in LEGACY_NETWORK if k in data}}


ECHO_CHARS = 200  # an error quotes at most this much of the file


def _clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was (a 200 kB model.json is not echoed).

    >>> _clip("x" * 300, 10)
    'xxxxxxxxxx... (300 characters)'
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def describe_errors(exc: ValidationError) -> str:
    """One line naming each wrong field (dotted path) and the value given, at most five of them."""
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
