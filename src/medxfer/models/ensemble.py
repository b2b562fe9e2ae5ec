"""A deep ensemble (Lakshminarayanan et al. 2017) as one network: the mean of its members' probabilities.

An :class:`Ensemble` behaves like a :class:`~medxfer.models.backbones.Classifier` for everything that
only runs it: ``predict_proba`` is the mean of the members' probabilities, and ``forward`` gives that
mean back as logits (log of the mean softmax; for a one-logit sigmoid output the logit of the mean
sigmoid), so temperature scaling, the Predictor, evaluation and ONNX export need no ensemble code.
What needs one network's parts (training stages, embeddings, one Grad-CAM layer) is refused with a
message; Grad-CAM averages the members' maps (:func:`medxfer.evaluate.explain.grad_cam`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MAX_MEMBERS = 16


class EnsembleError(ValueError):
    """An operation that needs a single network (its backbone, blocks or embedding) on an ensemble."""


class Ensemble(nn.Module):
    """Members with the same classes and output kind; state dict keys are ``members.<i>.<member key>``.

    Example::

        ens = Ensemble([build_model("custom_cnn", 2), build_model("custom_cnn", 2)])
        ens.predict_proba(torch.zeros(1, 3, 32, 32))   # (1, 2): the mean of the two members'
    """

    def __init__(self, members: Sequence[nn.Module], output: str = "softmax") -> None:
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
        self.num_classes = classes.pop()
        self.output = output

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``: the mean of the members' probabilities."""
        return torch.stack([m.predict_proba(x) for m in self.members]).mean(dim=0)

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
