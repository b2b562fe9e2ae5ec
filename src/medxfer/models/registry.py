"""The backbone registry: :class:`BackboneSpec` entries added by :func:`register_backbone`.

The built-in networks register themselves in :mod:`medxfer.models.zoo`; :mod:`medxfer.models.backbones`
imports the zoo and reads this registry (``get_spec``, ``list_backbones``, ``build_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from medxfer.models.families import FAMILIES, Family
from medxfer.registry import Registry

BackboneBuilder = Callable[[], nn.Module]
BlocksFn = Callable[[nn.Module], list[nn.Module]]
CamFn = Callable[[nn.Module], nn.Module]


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: how to build a backbone and how to feed it.

    ``family`` is the library behind it (:mod:`medxfer.models.families`; ``family.name`` is
    ``"torchvision"``, ``"timm"`` or ``"custom"``); ``arch`` is the library's own model name
    (``tf_efficientnet_lite0`` for ``efficientnet_lite0``). ``builder()`` returns the backbone with its
    classifier removed (forward gives the pooled embedding); ``blocks_fn`` lists its stages input-to-output;
    ``cam_fn`` picks the Grad-CAM layer.
    """

    name: str
    family: Family
    arch: str
    builder: BackboneBuilder
    blocks_fn: BlocksFn
    cam_fn: CamFn
    default_weights: str = "none"
    description: str = ""
    custom_preprocess: tuple[int, tuple[float, ...], tuple[float, ...]] | None = field(default=None)

    @property
    def input_size(self) -> int:
        """Default square input size (pixels) of this backbone's weights."""
        return self.preprocess(self.default_weights)[0]

    def preprocess(self, weights: str = "none") -> tuple[int, tuple[float, float, float], tuple[float, ...]]:
        """``(input_size, mean, std)`` that go with ``weights`` (a source name or ``file:PATH``).

        Read from the library that defines the weights (torchvision ``Weights.transforms()``, timm
        ``pretrained_cfg``: :meth:`Family.preprocess`), never retyped. The packaged weights were
        trained with the same preprocessing as the library's ImageNet weights (checked in tests), and
        ``none``/``file:`` keep the family's convention, so every source of one backbone shares it today;
        the argument keeps the contract.

        Example::

            size, mean, std = get_spec("efficientnet_lite0").preprocess("packaged")  # 224, (0.5,)*3, (0.5,)*3
        """
        del weights  # same convention for every source, see above
        size, mean, std = self.custom_preprocess or self.family.preprocess(self.arch)
        return int(size), tuple(float(m) for m in mean), tuple(float(s) for s in std)  # type: ignore[return-value]


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(
    name: str,
    *,
    family: str,
    arch: str | None = None,
    blocks: BlocksFn,
    cam: CamFn,
    default_weights: str = "none",
    description: str = "",
    preprocess: tuple[int, tuple[float, ...], tuple[float, ...]] | None = None,
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator adding a backbone builder to the registry under ``name`` (a name already taken is refused).

    ``family`` names a registered :class:`~medxfer.models.families.Family` (``torchvision``, ``timm``,
    ``custom``).

    Example::

        @register_backbone("tiny", family="custom", blocks=stages_of_tiny, cam=last_conv_of_tiny,
                           preprocess=(128, (0.5,) * 3, (0.5,) * 3))
        def tiny() -> nn.Module: ...
    """

    def decorate(builder: BackboneBuilder) -> BackboneBuilder:
        spec = BackboneSpec(
            name=name,
            family=FAMILIES.get(family),
            arch=arch or name,
            builder=builder,
            blocks_fn=blocks,
            cam_fn=cam,
            default_weights=default_weights,
            description=description,
            custom_preprocess=preprocess,
        )
        BACKBONES.register(name, spec)  # a name already taken is refused
        return builder

    return decorate
