"""The one registry type: duplicates refused, unknown names answered with the choices, sorted listings,
lazy plug-ins imported once, descriptions for help texts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medxfer.registry import Registry, UnknownNameError


class _Error(RuntimeError):
    """A caller's own error type."""


def _registry() -> Registry[str]:
    reg: Registry[str] = Registry("fruit")
    for name in ("pear", "apple", "fig"):
        reg.register(name, name.upper())
    return reg


def test_a_duplicate_name_is_refused_unless_replaced() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="fruit 'pear' is already registered"):
        reg.register("pear", "other")
    assert reg.get("pear") == "PEAR"
    reg.register("pear", "other", replace=True)
    assert reg.get("pear") == "other"


def test_an_unknown_name_lists_the_choices_in_the_callers_error_type() -> None:
    with pytest.raises(UnknownNameError, match="unknown fruit 'kiwi'; choose one of: apple, fig, pear$"):
        _registry().get("kiwi")
    assert issubclass(UnknownNameError, ValueError)
    own: Registry[int] = Registry("thing", error=_Error)
    own.register("a", 1)
    with pytest.raises(_Error, match="unknown thing 'b'; choose one of: a"):
        own.get("b")


def test_names_iteration_and_membership_are_sorted_and_agree() -> None:
    reg = _registry()
    assert reg.names() == list(reg) == ["apple", "fig", "pear"]
    assert "fig" in reg and "kiwi" not in reg and len(reg) == 3
    reg.remove("fig")
    assert reg.names() == ["apple", "pear"]
    with pytest.raises(UnknownNameError, match="unknown fruit 'fig'"):
        reg.remove("fig")


def test_a_sort_key_and_labels_order_and_name_the_choices() -> None:
    reg: Registry[tuple[int, str]] = Registry(
        "source", key=lambda item: item[0], label=lambda n, item: item[1]
    )
    reg.register("none", (90, "none"))
    reg.register("file", (30, "file:PATH"))
    reg.register("zip", (30, "zip:PATH"))
    reg.register("best", (10, "best"))
    assert reg.names() == ["best", "file", "zip", "none"]  # by key, ties by name
    assert reg.choices() == ["best", "file:PATH", "zip:PATH", "none"]
    with pytest.raises(UnknownNameError, match="choose one of: best, file:PATH, zip:PATH, none"):
        reg.get("hub")


def test_describe_is_built_from_the_descriptions() -> None:
    def folder(root: str) -> str:
        """One sub-folder per class.

        More detail that the help does not show.
        """
        return root

    class Entry:
        description = "an entry with a description"

    reg: Registry[object] = Registry("layout")
    reg.register("folder", folder)
    reg.register("csv", Entry())
    reg.register("bare", 3)
    assert reg.describe().splitlines() == [
        "bare",
        "csv     an entry with a description",
        "folder  One sub-folder per class.",
    ]


def test_a_plugin_is_imported_on_first_use_only_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg: Registry[str] = Registry("source")
    reg.register("file", "FILE")
    module = "medxfer_test_plugin_source"
    (tmp_path / f"{module}.py").write_text(
        "import builtins\n"
        "builtins.medxfer_plugin_imports = getattr(builtins, 'medxfer_plugin_imports', 0) + 1\n"
        f"from {__name__} import REGISTRY\n"
        "REGISTRY.register('late', 'LATE')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(globals(), "REGISTRY", reg)
    reg.add_plugin("late", module)
    import builtins

    monkeypatch.setattr(builtins, "medxfer_plugin_imports", 0, raising=False)
    try:
        assert "late" in reg and module not in sys.modules  # membership does not import
        assert reg.get("late") == "LATE"
        sys.modules.pop(module)  # a second import would run the module again
        assert reg.get("late") == "LATE" and reg.names() == ["file", "late"]
        assert builtins.medxfer_plugin_imports == 1  # type: ignore[attr-defined]
    finally:
        sys.modules.pop(module, None)


def test_a_listing_imports_every_plugin_and_a_silent_plugin_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "medxfer_test_silent_plugin.py").write_text("# registers nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[str] = Registry("source", error=_Error)
    reg.add_plugin("ghost", "medxfer_test_silent_plugin")
    try:
        with pytest.raises(
            _Error, match="source 'ghost': its plug-in module medxfer_test_silent_plugin did not"
        ):
            reg.names()
    finally:
        sys.modules.pop("medxfer_test_silent_plugin", None)


def test_a_plugin_name_is_declared_once() -> None:
    reg: Registry[str] = Registry("source")
    reg.add_plugin("ghost", "medxfer_test_no_such_module")
    with pytest.raises(ValueError, match="source 'ghost' is already registered"):
        reg.add_plugin("ghost", "other")
