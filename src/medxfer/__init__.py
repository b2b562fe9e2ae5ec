"""medxfer: transfer-learning medical image classifiers (chest X-ray first), judged honestly.

Pipeline: check -> split -> train (stages) -> evaluate / explain -> tune -> features + classical
-> predict / export / serve. Each step is a command (``medxfer --help``, ``medxfer COMMAND --help``) and a
function here; ``help(medxfer.train)`` and friends document each one.

The API (``import medxfer`` is instant; each function loads what it needs when called):

- ``medxfer.train(recipe, out=..., overrides=...) -> Run``: a recipe by name (``medxfer recipes`` lists
  them: ``"kermany-binary"``, ...) or a YAML path; ``overrides`` maps dotted config keys to values
  (``{"train.batch_size": 16}``).
- ``medxfer.load_run(path) -> Run``; ``Run.evaluate()`` (the test split if any, else val; ``data=`` for
  another dataset) -> ``Evaluation`` (``.headline()``, ``.figures``, ``.report``); ``Run.predict(paths)``
  -> DataFrame; ``Run.explain(image)`` -> Grad-CAM; ``Run.export("onnx")``; ``Run.summary()``.
- ``medxfer.check(*specs, task=...)``, ``medxfer.load_table(specs)``, ``medxfer.make_config(recipe, ...)``,
  ``medxfer.tune(recipe, trials=...)``, ``medxfer.ensemble(runs, out=...)``.

A dataset is ``"LAYOUT:PATH"`` (``kermany:``, ``covid19-radiography:``, ``ieee8023:``, ``folder:``,
``csv:``, ...). Example::

    import medxfer
    run = medxfer.train("kermany-binary", out="runs/kb", overrides={"train.batch_size": 16})
    ev = run.evaluate()
    print(ev.headline())
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# The public API (medxfer/api.py), imported on first use so ``import medxfer`` stays instant.
_API = (
    "Evaluation",
    "Explanation",
    "Run",
    "check",
    "ensemble",
    "load_run",
    "load_table",
    "make_config",
    "pretrain",
    "train",
    "tune",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("medxfer.api"), name)
    raise AttributeError(f"module 'medxfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
