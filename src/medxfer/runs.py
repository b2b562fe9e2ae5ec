"""Run folders: the self-describing output of ``medxfer train`` that every later step reads.

A run folder holds ``model.json`` (a :class:`ModelInfo`) and ``model.safetensors`` (the classifier's
state dict). ``predict``, ``serve``, ``export`` and ``evaluate`` need nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from medxfer.models.ensemble import InputSpec

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"


@dataclass
class ModelInfo:
    """Everything needed to rebuild a trained classifier and preprocess its input.

    Example::

        info = ModelInfo(class_names=["normal", "pneumonia"], backbone="efficientnet_lite0",
                         weights="packaged", input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    """

    class_names: list[str]
    backbone: str
    weights: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: str = "gray"  # data convention: "gray" (replicated to 3 for the net) or "rgb"
    head: dict[str, Any] = field(default_factory=lambda: {"kind": "linear", "hidden": 0, "dropout": 0.0})
    output: str = "softmax"  # "softmax" (one logit per class) or "sigmoid" (binary: one logit)
    threshold: float = 0.5  # binary decision threshold on P(positive class = class_names[1])
    threshold_method: str = "default"
    temperature: float = 1.0  # local calibration: probabilities are softmax(log p / temperature)
    mask_boxes: list[list[float]] = field(default_factory=list)  # [x0, y0, x1, y1] relative, blacked out
    resize: str = "squash"  # how an image becomes input_size x input_size
    preprocess: str = "none"  # contrast after resizing: none | equalize | clahe (medxfer.data.contrast)
    metrics: dict[str, Any] = field(default_factory=dict)  # validation metrics shown by serve/compare
    extra: dict[str, Any] = field(default_factory=dict)
    # An ensemble run (``medxfer ensemble``): one {backbone, weights, head, run, metrics, input_size, mean,
    # std} per member; the fields above are the ensemble's input (input_size: the largest member's, mean/std:
    # the first member's; each member resizes and re-normalises it inside the network) and the members'
    # shared preprocessing (backbone/weights/head: the first member's).
    members: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def for_backbone(
        cls,
        backbone: str,
        weights: str,
        class_names: list[str],
        input_size: int | None = None,
        **fields_: Any,
    ) -> ModelInfo:
        """The record of ``backbone`` + ``weights``: size, mean and std read from the backbone's weights
        (never retyped), other fields (channels, mask_boxes, head, output) as given."""
        from medxfer.models.backbones import get_spec
        from medxfer.models.weights import card_preprocess

        # pretrained weights with a card (file:DIR, pretrained:NAME) carry their own preprocessing
        size, mean, std = card_preprocess(weights) or get_spec(backbone).preprocess(weights)
        size = int(input_size or size)
        return cls(list(class_names), backbone, weights, size, tuple(mean), tuple(std), **fields_)  # type: ignore[arg-type]

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    def to_json(self) -> str:
        data = asdict(self)
        for name, default in (("members", []), ("preprocess", "none")):
            if data[name] == default:
                del data[name]  # a model.json without them stays as it always was
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        known = {f.name for f in fields(cls)}
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.mean = tuple(info.mean)  # type: ignore[assignment]
        info.std = tuple(info.std)  # type: ignore[assignment]
        return info


class ModelInfoError(ValueError):
    """A ``model.json`` (or its weights) that fails validation; the message names the file and the field."""


def read_model_info(run_dir: str | os.PathLike[str]) -> ModelInfo:
    """Read and validate ``RUN/model.json`` (every field's type and range, see :mod:`medxfer.runs_schema`).

    Raises FileNotFoundError naming the folder if it is not a run, :class:`ModelInfoError` naming
    ``model.json`` and the field when a value is wrong.
    """
    from medxfer.runs_schema import validate_model_json

    path = Path(run_dir) / MODEL_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a medxfer run folder (no {MODEL_JSON}); train one first")
    try:
        data = validate_model_json(path.read_bytes())
    except ValueError as exc:
        raise ModelInfoError(f"{path}: {exc}") from None
    return ModelInfo.from_dict(data)


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
    from medxfer.models.backbones import build_model

    if not info.members:
        return build_model(
            info.backbone, num_classes=info.num_classes, weights="none", head=info.head, output=info.output
        )
    from medxfer.models.ensemble import Ensemble

    members = [
        build_model(
            m["backbone"], num_classes=info.num_classes, weights="none", head=m["head"], output=info.output
        )
        for m in info.members
    ]
    source, inputs = member_inputs(info)
    return Ensemble(members, output=info.output, inputs=inputs, source=source)


def member_inputs(info: ModelInfo) -> tuple[InputSpec, list[InputSpec]]:
    """An ensemble's input and each member's own (``input_size``/``mean``/``std`` of its ``members``
    entry; an entry without them, as ensembles before per-member sizes wrote, eats the ensemble's input)."""
    from medxfer.models.ensemble import InputSpec

    source = InputSpec(int(info.input_size), _three(info.mean), _three(info.std))
    inputs = [
        InputSpec(
            int(m.get("input_size") or source.size),
            _three(m.get("mean") or source.mean),
            _three(m.get("std") or source.std),
        )
        for m in info.members
    ]
    return source, inputs


def _three(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


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
            f"{run_dir / MODEL_JSON}: fields 'backbone', 'head', 'output', 'class_names' (and 'members') "
            f"do not match {MODEL_WEIGHTS} ({shown})"
        )
