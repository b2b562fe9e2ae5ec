"""medxfer: transfer-learning medical image classifiers, judged honestly.

Pipeline: check -> split -> train (stages) -> evaluate / explain -> tune -> features + classical
-> predict / export / serve. Each step is a CLI command (``medxfer --help``) and a function of the public API
(``medxfer.train``, ``medxfer.load_run(...).evaluate()``; see docs/api.md).
Nothing heavy is imported here (DESIGN principle 10).
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
