"""The ``medxfer`` command line: one Typer app.

Each command lives in a small module of :mod:`medxfer.commands` whose ``register(app)`` adds it;
command bodies import the heavy modules they call, so ``medxfer --help`` stays fast.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import click
import typer
from typer.core import TyperCommand, TyperGroup


class _Commands(TyperGroup):
    """A mistyped command gets "Did you mean 'evaluate'?" (newer Typer says it itself; older did not)."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            close = difflib.get_close_matches(args[0], list(self.commands), n=1) if args else []
            if close and "did you mean" not in exc.message.lower():
                exc.message += f" Did you mean {close[0]!r}?"
            raise


app = typer.Typer(
    cls=_Commands,
    name="medxfer",
    help=(
        "Start with `medxfer demo` (the whole pipeline on real chest X-rays, minutes on a CPU), then "
        "`medxfer check DATA` on your own images, then `medxfer train -c RECIPE --out runs/NAME`. "
        "Transfer-learning medical image classifiers (chest X-ray first), judged honestly."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from medxfer import __version__

        typer.echo(f"medxfer {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Transfer-learning medical image classifiers (chest X-ray first), judged honestly."""


# One module per pipeline step; each defines register(app: typer.Typer) -> None.
COMMAND_MODULES = (
    "data",  # split
    "check",  # check (incl. shortcut probe)
    "augment",  # augment
    "models",  # models [list], models summary (a sub-app)
    "recipes",  # recipes [NAME]
    "summary",  # summary RUN
    "train",  # train, lr-find
    "pretrain",  # pretrain (self-supervised adaptation of a backbone)
    "evaluate",  # evaluate, explain, compare, demo
    "classical",  # features, classical
    "tune",  # tune
    "crossval",  # crossval
    "inference",  # predict, export, serve
    "ensemble",  # ensemble (runs saved as one run)
    "demo",  # demo (the README main job)
)

for _name in COMMAND_MODULES:  # a missing or broken command module is an error, never skipped
    importlib.import_module(f"medxfer.commands.{_name}").register(app)

# `medxfer --help` groups the commands by pipeline step (a command not listed here lands in "Other").
PANELS = {
    "Data": ("check", "split", "augment"),
    "Train": (
        "demo",
        "recipes",
        "models",
        "train",
        "lr-find",
        "tune",
        "crossval",
        "pretrain",
        "features",
        "classical",
    ),
    "Judge": ("evaluate", "explain", "compare", "summary", "ensemble"),
    "Deploy": ("predict", "export", "serve"),
}


def _fill_registry_choices(group: typer.Typer) -> None:
    """Every command's help names registry choices from the registries (commands.common.RegistryHelp)."""
    from medxfer.commands.common import RegistryHelp

    for info in group.registered_commands:
        if info.cls in (None, TyperCommand):  # Typer's default (a command's own class is kept)
            info.cls = RegistryHelp
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _fill_registry_choices(sub.typer_instance)


_fill_registry_choices(app)
_ORDER = [name for names in PANELS.values() for name in names]
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
app.registered_commands.sort(key=lambda c: _ORDER.index(c.name) if c.name in _ORDER else len(_ORDER))
for _info in [*app.registered_commands, *app.registered_groups]:
    _info.rich_help_panel = _PANEL_OF.get(str(_info.name), "Other")


if __name__ == "__main__":
    app()
