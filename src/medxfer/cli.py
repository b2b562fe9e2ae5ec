"""The ``medxfer`` command line: one Typer app.

Each command lives in a small module of :mod:`medxfer.commands` whose ``register(app)`` adds it;
command bodies import the heavy modules they call, so ``medxfer --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
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
    "models",  # models, models summary
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


if __name__ == "__main__":
    app()
