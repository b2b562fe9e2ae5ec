"""The ``medxfer`` command line: one Typer app.

Each command lives in a small module of :mod:`medxfer.commands` whose ``register(app)`` adds it;
command bodies import the heavy modules they call, so ``medxfer --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="medxfer",
    help="Transfer-learning medical image classifiers (chest X-ray first), judged honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per pipeline step; each defines register(app: typer.Typer) -> None.
COMMAND_MODULES = (
    "data",  # split
    "check",  # check (incl. shortcut probe)
    "augment",  # augment
    "models",  # models
    "train",  # train, lr-find
    "evaluate",  # evaluate, explain, compare, demo
    "classical",  # features, classical
    "tune",  # tune
    "crossval",  # crossval
    "inference",  # predict, export, serve
    "demo",  # demo (the README main job)
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"medxfer.commands.{_name}")
    except ModuleNotFoundError as exc:  # a step not written yet must not break the others
        if exc.name != f"medxfer.commands.{_name}":
            raise
        continue
    _module.register(app)


if __name__ == "__main__":
    app()
