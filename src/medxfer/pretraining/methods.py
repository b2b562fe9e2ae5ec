"""Self-supervised objectives over a backbone's pooled embedding, with ``lightly``'s heads and losses.

A method is a module holding the backbone (the student) and whatever the objective adds (projection and
prediction heads, a momentum teacher); ``loss(x1, x2, progress, epoch)`` is the loss of two views of
a batch, ``progress`` the fraction of training done (momentum schedules read it).

- ``simclr``: contrastive; ``SimCLRProjectionHead`` + ``NTXentLoss`` (needs large batches to shine).
- ``byol``: a momentum teacher (EMA 0.99 -> 1) predicts nothing but itself; ``BYOLProjectionHead``,
  ``BYOLPredictionHead``, negative cosine similarity. No negatives: works with small CPU batches.
- ``dino``: self-distillation; ``DINOProjectionHead`` + ``DINOLoss`` (centred, sharpened teacher).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

METHODS: dict[str, Callable[[nn.Module, int, int], SSLMethod]] = {}
DEFAULT_METHOD = "byol"


def register_method(name: str) -> Callable[[Callable], Callable]:
    """Decorator adding a method builder ``fn(backbone, num_features, epochs) -> SSLMethod``."""

    def deco(fn: Callable) -> Callable:
        METHODS[name] = fn
        return fn

    return deco


def list_methods() -> list[str]:
    """Names of the pretraining methods (``byol``, ``dino``, ``simclr``)."""
    return sorted(METHODS)


class SSLMethod(nn.Module):
    """A student ``backbone`` plus the objective's parts; subclasses define :meth:`loss`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, progress: float, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def after_backward(self, epoch: int) -> None:
        """Gradient surgery some methods need (DINO freezes its last layer for the first epoch)."""


def _teacher(module: nn.Module) -> nn.Module:
    from lightly.models.utils import deactivate_requires_grad

    teacher = copy.deepcopy(module)
    deactivate_requires_grad(teacher)
    return teacher


def _momentum(pairs: list[tuple[nn.Module, nn.Module]], progress: float, start: float) -> None:
    """EMA of the student into the teacher, momentum ``start`` -> 1 on a cosine over training."""
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    m = cosine_schedule(int(progress * 10_000), 10_000, start, 1.0)
    for student, teacher in pairs:
        update_momentum(student, teacher, m=m)


class SimCLR(SSLMethod):
    """Contrastive views of one image against the other images of the batch."""

    def __init__(self, backbone: nn.Module, num_features: int):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__(backbone)
        self.head = SimCLRProjectionHead(num_features, num_features, 128)
        self.criterion = NTXentLoss(temperature=0.2)

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, progress: float, epoch: int) -> torch.Tensor:
        return self.criterion(self.head(self.backbone(x1)), self.head(self.backbone(x2)))


class BYOL(SSLMethod):
    """Online network predicts the momentum teacher's projection of the other view."""

    def __init__(self, backbone: nn.Module, num_features: int):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

        super().__init__(backbone)
        self.projection = BYOLProjectionHead(num_features, 1024, 256)
        self.prediction = BYOLPredictionHead(256, 1024, 256)
        self.teacher_backbone = _teacher(backbone)
        self.teacher_projection = _teacher(self.projection)
        self.criterion = NegativeCosineSimilarity()

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction(self.projection(self.backbone(x)))

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher_projection(self.teacher_backbone(x)).detach()

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, progress: float, epoch: int) -> torch.Tensor:
        _momentum(
            [(self.backbone, self.teacher_backbone), (self.projection, self.teacher_projection)],
            progress,
            0.99,
        )
        p1, p2 = self._online(x1), self._online(x2)
        z1, z2 = self._target(x1), self._target(x2)
        return 0.5 * (self.criterion(p1, z2) + self.criterion(p2, z1))


class DINO(SSLMethod):
    """A student matches the centred, sharpened output of its momentum teacher on the other view."""

    OUT = 2048  # prototypes: smaller than DINO's 65536, sized for CPU batches

    def __init__(self, backbone: nn.Module, num_features: int, epochs: int):
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        super().__init__(backbone)
        from lightly.models.utils import deactivate_requires_grad

        self.head = DINOProjectionHead(num_features, 512, 64, self.OUT, freeze_last_layer=1)
        self.teacher_backbone = _teacher(backbone)
        # a new head with the student's weights: weight-normalised layers cannot be deep-copied
        self.teacher_head = DINOProjectionHead(num_features, 512, 64, self.OUT)
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(output_dim=self.OUT, warmup_teacher_temp_epochs=max(1, epochs // 3))

    def loss(self, x1: torch.Tensor, x2: torch.Tensor, progress: float, epoch: int) -> torch.Tensor:
        _momentum([(self.backbone, self.teacher_backbone), (self.head, self.teacher_head)], progress, 0.996)
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_backbone(x)) for x in (x1, x2)]
        student = [self.head(self.backbone(x)) for x in (x1, x2)]
        return self.criterion(teacher, student, epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        self.head.cancel_last_layer_gradients(current_epoch=epoch)


register_method("simclr")(lambda backbone, nf, epochs: SimCLR(backbone, nf))
register_method("byol")(lambda backbone, nf, epochs: BYOL(backbone, nf))
register_method("dino")(lambda backbone, nf, epochs: DINO(backbone, nf, epochs))


def build_method(name: str, backbone: nn.Module, num_features: int, epochs: int) -> SSLMethod:
    """The method ``name`` around ``backbone``; ``PretrainError`` listing the valid names otherwise."""
    from medxfer.pretraining.images import PretrainError

    if name not in METHODS:
        raise PretrainError(
            f"unknown pretraining method {name!r}; choose one of: {', '.join(list_methods())}"
        )
    return METHODS[name](backbone, num_features, epochs)
