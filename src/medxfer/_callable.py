"""Make a submodule callable as the public API function of the same name.

``medxfer.train`` (the package ``medxfer/train/``) shares its name with :func:`medxfer.api.train`.
Once a submodule is imported,
Python binds it as the attribute ``medxfer.train``, hiding the function; making the module itself
callable keeps ``medxfer.train(...)`` working either way. The API is looked up by name at call time,
so a lower layer never imports :mod:`medxfer.api`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(module_name: str, api_name: str) -> None:
    """Calling the module ``module_name`` calls ``medxfer.api.<api_name>``."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module("medxfer.api"), api_name)(*args, **kwargs)

    CallableModule.__call__.__doc__ = f"Same as medxfer.api.{api_name} (see its docstring)."
    sys.modules[module_name].__class__ = CallableModule
