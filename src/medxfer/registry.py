"""One registry type for every plug-in kind: backbones, backbone families, weight sources, dataset
layouts, classical classifiers. One behaviour for all of them:

- :meth:`Registry.register` refuses a name already taken (``ValueError``) unless ``replace=True``;
- :meth:`Registry.get` raises the registry's own error type with a message naming the valid choices;
- :meth:`Registry.names` are sorted (by the registry's ``key``, then by name), and so are iteration,
  :meth:`Registry.items` and :meth:`Registry.choices`;
- a plug-in (:meth:`Registry.add_plugin`) is a name served by a module imported on its first use, once
  (a higher layer's entry, as an entry point would be);
- :meth:`Registry.describe` is a help text of one line per entry, built from the entries' descriptions.

It imports nothing of medxfer, so every layer may use it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the valid choices."""


def first_line(text: str | None) -> str:
    """The first non-empty line of a docstring or description ("" for none)."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _description(item: object) -> str:
    """An entry's ``description``, or a function entry's docstring (never its class's docstring)."""
    text = getattr(item, "description", None)
    if text is None and inspect.isroutine(item):
        text = item.__doc__
    return first_line(text)


class Registry(Generic[T]):
    """A name -> item table of one plug-in kind.

    Args:
        kind: what an entry is, for messages (``"backbone"``, ``"dataset layout"``).
        error: the exception type raised for an unknown name (the caller's own, e.g. ``DatasetError``).
        key: sort key of an entry (default: its name; ties are broken by name).
        label: how an entry is written on the command line (default: its name; ``file:PATH``).
        describe: an entry's one-line description (default: its ``description`` or docstring).

    Example::

        LAYOUTS: Registry[LayoutFunc] = Registry("dataset layout", error=DatasetError)
        LAYOUTS.register("folder", folder_layout)
        LAYOUTS.get("nope")  # DatasetError: unknown dataset layout 'nope'; choose one of: folder
    """

    def __init__(
        self,
        kind: str,
        *,
        error: Callable[[str], Exception] = UnknownNameError,
        key: Callable[[T], Any] | None = None,
        label: Callable[[str, T], str] | None = None,
        describe: Callable[[T], str] | None = None,
    ) -> None:
        self.kind = kind
        self._error = error
        self._key = key
        self._label = label or (lambda name, item: name)
        self._describe = describe or _description
        self._items: dict[str, T] = {}
        self._plugins: dict[str, str] = {}

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Add ``item`` as ``name`` and return it; ``ValueError`` if the name is taken, unless ``replace``."""
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True to replace it)")
        self._items[name] = item
        self._plugins.pop(name, None)
        return item

    def remove(self, name: str) -> T:
        """Take ``name`` out of the registry (a test's or plug-in's undo) and return its item."""
        if name not in self._items:
            raise self.unknown(name)
        return self._items.pop(name)

    def add_plugin(self, name: str, module: str) -> None:
        """Serve ``name`` from ``module``, imported on the first :meth:`get` of the name (or a listing);
        the module registers the name itself."""
        if name in self._items or name in self._plugins:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._plugins[name] = module

    def _load(self, name: str) -> None:
        module = self._plugins.pop(name, None)
        if module is not None and name not in self._items:
            importlib.import_module(module)
            if name not in self._items:
                raise self._error(f"{self.kind} {name!r}: its plug-in module {module} did not register it")

    def _load_all(self) -> None:
        for name in list(self._plugins):
            self._load(name)

    def unknown(self, name: str) -> Exception:
        """The error for an unknown ``name``: the registry's error type, naming the valid choices."""
        return self._error(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.choices())}")

    def get(self, name: str) -> T:
        """The entry ``name`` (importing its plug-in first if it has one); the registry's error if unknown."""
        self._load(name)
        if name not in self._items:
            raise self.unknown(name)
        return self._items[name]

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs, sorted; every plug-in is loaded first (a listing shows them all)."""
        self._load_all()
        pairs = sorted(self._items.items())
        if self._key is not None:
            key = self._key
            pairs.sort(key=lambda pair: key(pair[1]))  # stable: equal keys stay in name order
        return pairs

    def names(self) -> list[str]:
        """Registered names, sorted (plug-ins included)."""
        return [name for name, _ in self.items()]

    def choices(self) -> list[str]:
        """The names as written on the command line (``file:PATH``), in :meth:`names` order."""
        return [self._label(name, item) for name, item in self.items()]

    def describe(self) -> str:
        """One line per entry: its command-line form and its description."""
        pairs = [(self._label(name, item), self._describe(item)) for name, item in self.items()]
        width = max((len(label) for label, _ in pairs), default=0)
        return "\n".join(f"{label:<{width}}  {text}".rstrip() for label, text in pairs)

    def __contains__(self, name: object) -> bool:
        """Registered or served by a plug-in (checked without importing it)."""
        return name in self._items or name in self._plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items) + len(self._plugins)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(sorted([*self._items, *self._plugins]))})"
