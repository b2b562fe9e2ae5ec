"""A deep ensemble (Lakshminarayanan et al. 2017) as one network: the mean of its members' probabilities.

An :class:`Ensemble` behaves like a :class:`~medxfer.models.backbones.Classifier` for everything that
only runs it: ``predict_proba`` is the mean of the members' probabilities, and ``forward`` gives that
mean back as logits (log of the mean softmax; for a one-logit sigmoid output the logit of the mean
sigmoid), so temperature scaling, the Predictor, evaluation and ONNX export need no ensemble code.
What needs one network's parts (training stages, embeddings, one Grad-CAM layer) is refused with a
message; Grad-CAM averages the members' maps (:func:`medxfer.evaluate.explain.grad_cam`).

Members at their own input sizes (Lite0 at 224 + Lite2 at 260): the ensemble takes ONE input, the
largest member size normalised with one mean/std (:class:`InputSpec`); each member's
:class:`InputAdapter` resizes it to the member's size (bilinear, antialiased when shrinking) and
re-normalises it to the member's mean/std inside the network, so the Predictor and the exported graph
see one tensor. The adapters hold no weights: the state dict keys stay ``members.<i>.*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MAX_MEMBERS = 16


class EnsembleError(ValueError):
    """An operation that needs a single network (its backbone, blocks or embedding) on an ensemble."""


@dataclass(frozen=True)
class InputSpec:
    """What a network eats: ``size`` x ``size`` pixels scaled to [0, 1], then ``(x - mean) / std``."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class InputAdapter(nn.Module):
    """The ensemble's input (``source``) -> one member's (``target``): resize, then re-normalise.

    Bilinear resizing and a per-channel affine map commute (the resize weights sum to one), so
    ``resize(x) * std_s / std_t + (mean_s - mean_t) / std_t`` is the member's own normalisation of the
    resized [0, 1] pixels. The identity (same size and normalisation) costs nothing.

    Example::

        a = InputAdapter(InputSpec(260, (0.5,) * 3, (0.5,) * 3), InputSpec(224, (0.5,) * 3, (0.5,) * 3))
        a(torch.zeros(1, 3, 260, 260)).shape   # (1, 3, 224, 224)
    """

    def __init__(self, source: InputSpec, target: InputSpec) -> None:
        super().__init__()
        self.size = int(target.size)
        self.resize = int(source.size) != self.size
        self.renormalise = (tuple(source.mean), tuple(source.std)) != (tuple(target.mean), tuple(target.std))
        scale = torch.tensor(source.std) / torch.tensor(target.std)
        shift = (torch.tensor(source.mean) - torch.tensor(target.mean)) / torch.tensor(target.std)
        self.register_buffer("scale", scale.float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.float().view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 3, S, S)`` at the source spec -> ``(B, 3, size, size)`` at the target spec."""
        if self.resize:
            shrink = self.size < x.shape[-1]
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink
            )
        if self.renormalise:
            x = x * self.scale.to(x.dtype) + self.shift.to(x.dtype)
        return x


class Ensemble(nn.Module):
    """Members with the same classes and output kind; state dict keys are ``members.<i>.<member key>``.

    Example::

        ens = Ensemble([build_model("custom_cnn", 2), build_model("custom_cnn", 2)])
        ens.predict_proba(torch.zeros(1, 3, 32, 32))   # (1, 2): the mean of the two members'

    ``inputs``: one :class:`InputSpec` per member and ``source`` the ensemble's input; both None when
    all members share one input (every adapter the identity).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        output: str = "softmax",
        inputs: Sequence[InputSpec] | None = None,
        source: InputSpec | None = None,
    ) -> None:
        super().__init__()
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise EnsembleError(f"an ensemble needs 2 to {MAX_MEMBERS} members, got {len(members)}")
        classes = {int(getattr(m, "num_classes", -1)) for m in members}
        outputs = {str(getattr(m, "output", "")) for m in members}
        if len(classes) != 1 or outputs != {output}:
            raise EnsembleError(
                f"ensemble members must share num_classes and output={output!r}; got {classes}, {outputs}"
            )
        self.members = nn.ModuleList(members)
        self.adapters = nn.ModuleList(_adapters(len(members), inputs, source))
        self.num_classes = classes.pop()
        self.output = output

    def member_inputs(self, x: torch.Tensor) -> Iterator[tuple[nn.Module, torch.Tensor]]:
        """``(member, its input)`` for the ensemble input ``x`` (Grad-CAM runs each member on its own)."""
        for member, adapter in zip(self.members, self.adapters, strict=True):
            yield member, adapter(x)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``: the mean of the members' probabilities."""
        return torch.stack([m.predict_proba(xi) for m, xi in self.member_inputs(x)]).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits whose softmax (sigmoid for ``output="sigmoid"``: ``(B, 1)``) is :meth:`predict_proba`."""
        p = self.predict_proba(x)
        info = torch.finfo(p.dtype)
        if self.output == "sigmoid":
            q = p[:, 1:].clamp(info.tiny, 1.0 - info.eps)
            return torch.log(q) - torch.log1p(-q)
        return torch.log(p.clamp_min(info.tiny))

    def _single(self, what: str) -> EnsembleError:
        return EnsembleError(
            f"{what} needs one network; this is an ensemble of {len(self.members)} "
            "(use a member's run folder)"
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Refused: the members' embeddings live in different spaces."""
        raise self._single("an embedding (features, classical)")

    def blocks(self) -> list[nn.Module]:
        """Refused: training stages unfreeze one network's blocks."""
        raise self._single("staged training (blocks)")

    def cam_layer(self) -> nn.Module:
        """Refused: Grad-CAM on an ensemble averages its members' maps instead (``grad_cam`` does it)."""
        raise self._single("one Grad-CAM layer")


def _adapters(n: int, inputs: Sequence[InputSpec] | None, source: InputSpec | None) -> list[InputAdapter]:
    """One adapter per member: the identity unless ``inputs`` differ from ``source``."""
    if inputs is None or source is None:
        same = InputSpec(0, (0.0,) * 3, (1.0,) * 3)
        return [InputAdapter(same, same) for _ in range(n)]
    if len(inputs) != n:
        raise EnsembleError(f"an ensemble of {n} members needs {n} input specs, got {len(inputs)}")
    return [InputAdapter(source, spec) for spec in inputs]
