"""The weight source ``pretrained:NAME``: the weights of pretraining recipe NAME, made on first use.

The first use runs ``configs/pretrain/NAME.yaml`` into ``$MEDXFER_CACHE/pretrain/NAME-<hash of the
recipe>`` (a killed run resumes there on the next use); later uses load it. The folder is a
``medxfer pretrain`` output, so loading and preprocessing are those of ``file:DIR``. Imported by
:mod:`medxfer.models.weights` on the first ``pretrained:`` name (``WEIGHT_SOURCES.add_plugin`` there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from medxfer.models.cards import CARD_FILE, folder_preprocess
from medxfer.models.weights import WEIGHT_SOURCES, register_weight_source


def cached_folder(name: str) -> Path:
    """Where the weights of recipe ``name`` are cached (whether they exist yet or not)."""
    from medxfer.data.cache import cache_root
    from medxfer.pretraining.recipes import recipe_key

    return cache_root() / "pretrain" / recipe_key(name)


def materialise(name: str) -> Path:
    """The cached weights folder of recipe ``name``, running (or resuming) its pretraining if needed."""
    from medxfer.pretraining.engine import pretrain_run
    from medxfer.pretraining.recipes import load_recipe

    out = cached_folder(name)
    if not (out / CARD_FILE).is_file():
        print(f"pretrained:{name}: running pretraining recipe {name} into {out} (first use; resumable)")
        pretrain_run(out, load_recipe(name, progress=True), resume=True)
    return out


def _status(spec: Any) -> str:
    """Which packaged pretraining recipes adapt this backbone (not "ok": each runs a pretraining first)."""
    from medxfer.pretraining.recipes import read_recipe
    from medxfer.recipes import list_pretrain_recipes

    names = [n for n in list_pretrain_recipes() if read_recipe(n)[1].get("backbone") == spec.name]
    if not names:
        return f"no pretraining recipe for {spec.name}"
    return f"runs a pretraining on first use: pretrained:{', pretrained:'.join(names)}"


def _preprocess(path: Path) -> tuple[int, tuple[float, ...], tuple[float, ...]] | None:
    return folder_preprocess(materialise(str(path)))


@register_weight_source(
    "pretrained", status=_status, usage="pretrained:NAME", rank=35, preprocess=_preprocess
)
def _pretrained_source(spec: Any, backbone: nn.Module, path: Path | None) -> tuple[dict, str]:
    """Weights of a pretraining recipe (run and cached on first use)."""
    assert path is not None
    return WEIGHT_SOURCES.get("file").load(spec, backbone, materialise(str(path)))
