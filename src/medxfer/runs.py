"""Run folders: the self-describing output of ``medxfer train`` that every later step reads.

A run folder holds ``model.json`` (a :class:`ModelInfo`) and ``model.safetensors`` (the classifier's
state dict). ``predict``, ``serve``, ``export`` and ``evaluate`` need nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from medxfer.runs_schema import (
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    RESIZE_MODES,
    Box,
    HeadSpec,
    MemberSpec,
    NetworkSpec,
    Triple,
    check_boxes,
    check_mean,
    check_std,
    describe_errors,
    migrate_legacy,
)

if TYPE_CHECKING:
    import torch

    from medxfer.models.ensemble import InputSpec

__all__ = [
    "MODEL_JSON",
    "MODEL_WEIGHTS",
    "HeadSpec",
    "MemberSpec",
    "ModelInfo",
    "ModelInfoError",
    "NetworkSpec",
    "load_model",
    "member_inputs",
    "read_model_info",
    "save_model",
    "validate_model_json",
]

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
RUN_FILE = {"file": MODEL_JSON}  # validation context: a run's model.json, whose model is a classifier


class ModelInfo(BaseModel):
    """Everything needed to rebuild a trained classifier and preprocess its input: ``model.json``.

    One network (``network``) or an ensemble (``members``), never both. Validated when built and when
    read (:func:`read_model_info`); unknown keys of a file are ignored, the flat format of older runs
    is migrated (:func:`medxfer.runs_schema.migrate_legacy`). ``class_names`` may be empty only in a
    preprocessing record that has no classifier (frozen-network features), never in a run's file.

    Example::

        info = ModelInfo(class_names=["normal", "pneumonia"], input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3,
                         network=NetworkSpec(backbone="efficientnet_lite0", weights="packaged"))
    """

    model_config = ConfigDict(extra="ignore")
    class_names: list[StrictStr] = Field(max_length=1000)
    input_size: StrictInt = Field(ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE)  # an ensemble's: its largest member's
    mean: Triple  # an ensemble's input: its first member's
    std: Triple
    channels: Literal["gray", "rgb"] = "gray"  # data convention: gray (replicated to 3 for the net) or rgb
    output: Literal["softmax", "sigmoid"] = "softmax"  # one logit per class, or binary: one logit
    threshold: StrictFloat = Field(0.5, ge=0.0, le=1.0)  # binary decision on P(class_names[1])
    threshold_method: StrictStr = "default"
    temperature: StrictFloat = Field(1.0, gt=0.0, le=1000.0, allow_inf_nan=False)  # softmax(log p / T)
    mask_boxes: list[Box] = Field(default_factory=list, max_length=64)  # relative boxes, blacked out
    resize: Literal[RESIZE_MODES] = "squash"  # type: ignore[valid-type]  # how an image becomes input_size^2
    preprocess: Literal["none", "equalize", "clahe"] = "none"  # contrast after resizing (data.contrast)
    tta: StrictBool = False  # predictions average the image and 4 small shifts unless a call says (--no-tta)
    metrics: dict[str, Any] = Field(default_factory=dict)  # validation metrics shown by serve/compare
    extra: dict[str, Any] = Field(default_factory=dict)
    network: NetworkSpec | None = None  # one network
    members: list[MemberSpec] | None = None  # an ensemble (medxfer ensemble), each member's own network

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate_legacy(data)

    @field_validator("class_names")
    @classmethod
    def _names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(value) == 1 or (not value and info.context == RUN_FILE):
            raise ValueError(f"a classifier needs at least 2 class names, got {value}")
        if any(not n.strip() for n in value):
            raise ValueError("class names must be non-empty")
        if len(set(value)) != len(value):
            raise ValueError(f"class names must be unique, got {value}")
        return value

    @field_validator("mean")
    @classmethod
    def _mean(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return check_mean(value)

    @field_validator("std")
    @classmethod
    def _std(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return check_std(value)

    @field_validator("mask_boxes")
    @classmethod
    def _boxes(cls, value: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
        return check_boxes(value)

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[MemberSpec] | None) -> list[MemberSpec] | None:
        from medxfer.models.ensemble import MAX_MEMBERS

        if value is not None and not 2 <= len(value) <= MAX_MEMBERS:
            raise ValueError(
                f"an ensemble has 2 to {MAX_MEMBERS} members, got {len(value)} "
                "(give 'network' instead for one network)"
            )
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> ModelInfo:
        if (self.network is None) == (self.members is None):
            given = "both" if self.network is not None else "neither"
            raise ValueError(
                f"give exactly one of 'network' (one network) and 'members' (an ensemble), got {given}"
            )
        if self.output == "sigmoid" and len(self.class_names) != 2:
            raise ValueError(f"output 'sigmoid' needs exactly 2 class_names, got {len(self.class_names)}")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_ensemble(self) -> bool:
        return self.members is not None

    @property
    def networks(self) -> list[NetworkSpec]:
        """The network(s) that predict: ``[network]``, or an ensemble's members."""
        return list(self.members) if self.members is not None else [self.network]  # type: ignore[list-item]

    @property
    def label(self) -> str:
        """What predicts, for people: ``efficientnet_lite0``, or ``ensemble of lite0 + lite2``."""
        names = " + ".join(n.backbone for n in self.networks)
        return f"ensemble of {names}" if self.is_ensemble else names

    @classmethod
    def for_backbone(
        cls,
        backbone: str,
        weights: str,
        class_names: Sequence[str],
        input_size: int | None = None,
        *,
        head: dict[str, Any] | None = None,
        channels: str = "gray",
        output: str = "softmax",
        mask_boxes: Sequence[Sequence[float]] = (),
        preprocess: str = "none",
        tta: bool = False,
    ) -> ModelInfo:
        """The record of one network, ``backbone`` + ``weights``: size, mean and std read from the
        weights (:meth:`NetworkSpec.preprocessing`, never retyped), the other fields as given."""
        network = NetworkSpec(backbone=backbone, weights=weights, head=HeadSpec(**(head or {})))
        size, mean, std = network.preprocessing(input_size)
        return cls(
            class_names=list(class_names),
            input_size=size,
            mean=mean,
            std=std,
            channels=channels,  # type: ignore[arg-type]
            output=output,  # type: ignore[arg-type]
            mask_boxes=[tuple(map(float, b)) for b in mask_boxes],  # type: ignore[misc]
            preprocess=preprocess,  # type: ignore[arg-type]
            tta=tta,
            network=network,
        )

    def to_json(self) -> str:
        """``model.json`` text: the fields, ``network`` or ``members`` (the one present)."""
        data = self.model_dump()
        for name in ("network", "members"):
            if data[name] is None:
                del data[name]
        return json.dumps(data, indent=2, sort_keys=True)


class ModelInfoError(ValueError):
    """A ``model.json`` (or its weights) that fails validation; the message names the file and the field."""


def validate_model_json(text: bytes | str) -> ModelInfo:
    """Parse and validate ``model.json`` text (either format); raises ValueError naming the field(s).

    >>> validate_model_json('{"class_names": ["a", "b"], "network": {"backbone": "custom_cnn", "weights":'
    ...     ' "none"}, "input_size": 0, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}')
    Traceback (most recent call last):
    ...
    ValueError: field 'input_size': Input should be greater than or equal to 16 (got 0)
    """
    try:
        return ModelInfo.model_validate_json(text, context=RUN_FILE)
    except ValidationError as exc:
        raise ValueError(describe_errors(exc)) from None


def read_model_info(run_dir: str | os.PathLike[str]) -> ModelInfo:
    """Read and validate ``RUN/model.json`` as a :class:`ModelInfo` (types and ranges; old format migrated).

    Raises FileNotFoundError naming the folder if it is not a run, :class:`ModelInfoError` naming
    ``model.json`` and the field when a value is wrong.
    """
    path = Path(run_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a medxfer run folder (no {MODEL_JSON}); train one first")
    try:
        return validate_model_json(path.read_bytes())
    except ValueError as exc:
        raise ModelInfoError(f"{path}: {exc}") from None


def save_model(run_dir: str | os.PathLike[str], model: torch.nn.Module, info: ModelInfo) -> None:
    """Write ``model.safetensors`` and ``model.json`` atomically into ``run_dir``."""
    from safetensors.torch import save

    from medxfer.io import atomic_write_bytes, atomic_write_text

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(Path(run_dir) / MODEL_WEIGHTS, save(tensors))
    atomic_write_text(Path(run_dir) / MODEL_JSON, info.to_json())


def load_model(run_dir: str | os.PathLike[str], device: str = "cpu") -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the classifier of a run folder (no network, no pickle) in eval mode.

    An ensemble run (``members`` in model.json) gives a :class:`medxfer.models.ensemble.Ensemble`, which
    predicts the mean of its members' probabilities.
    """
    from safetensors.torch import load_file

    info = read_model_info(run_dir)
    model = _network(info)
    weights = Path(run_dir) / MODEL_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing; the run folder has model.json but no weights")
    try:
        state = load_file(str(weights), device=device)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise ModelInfoError(f"{weights}: not a readable safetensors file ({exc})") from None
    _check_shapes(model, state, Path(run_dir))
    _check_finite(state, weights)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), info


def _network(info: ModelInfo) -> torch.nn.Module:
    """The untrained network ``info`` describes: a Classifier, or an Ensemble of its ``members``."""
    nets = [n.build(info.num_classes, info.output) for n in info.networks]
    if not info.is_ensemble:
        return nets[0]
    from medxfer.models.ensemble import Ensemble

    source, inputs = member_inputs(info)
    return Ensemble(nets, output=info.output, inputs=inputs, source=source)


def member_inputs(info: ModelInfo) -> tuple[InputSpec, list[InputSpec]]:
    """An ensemble's input and each member's own (``input_size``/``mean``/``std`` of its ``members``
    entry; an entry without them, as ensembles before per-member sizes wrote, eats the ensemble's input)."""
    from medxfer.models.ensemble import InputSpec

    source = InputSpec(info.input_size, info.mean, info.std)
    inputs = [
        InputSpec(m.input_size or source.size, m.mean or source.mean, m.std or source.std)
        for m in info.members or []
    ]
    return source, inputs


def _check_finite(state: dict[str, Any], weights: Path) -> None:
    """Every floating-point tensor finite: NaN / inf weights gave NaN probabilities and a silent label."""
    import torch

    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ModelInfoError(
            f"{weights}: tensor {', '.join(repr(k) for k in bad[:3])}{more} holds NaN or infinite values; "
            "the weights are damaged (retrain or restore the run)"
        )


def _check_shapes(model: torch.nn.Module, state: dict[str, Any], run_dir: Path) -> None:
    """Weights must match the network model.json describes (backbone, head, classes, output)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in expected if k not in given]
    problems += [f"unexpected {k}" for k in given if k not in expected]
    problems += [
        f"{k}: weights {given[k]}, model.json implies {v}"
        for k, v in expected.items()
        if given.get(k, v) != v
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; ... {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ModelInfoError(
            f"{run_dir / MODEL_JSON}: fields 'network' (or 'members'), 'output', 'class_names' "
            f"do not match {MODEL_WEIGHTS} ({shown})"
        )
