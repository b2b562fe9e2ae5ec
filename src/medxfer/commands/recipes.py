"""``medxfer recipes [NAME]``: the packaged recipes with one line each, or one recipe's YAML."""

from __future__ import annotations

import typer

from medxfer.commands.common import fail


def recipes(
    name: str | None = typer.Argument(None, help="A recipe to print in full (default: list them all)."),
) -> None:
    """List the packaged recipes (`medxfer train -c NAME`), or print recipe NAME's YAML."""
    from medxfer.recipes import RecipeError, describe, find_recipe, list_recipes

    if name is None:
        names = list_recipes()
        width = max(len(n) for n in names)
        for n in names:
            typer.echo(f"{n:<{width}}  {describe(n)}")
        typer.echo("\nmedxfer recipes NAME prints one; medxfer train -c NAME --out runs/NAME trains it.")
        return
    try:
        path = find_recipe(name)
    except RecipeError as exc:
        fail(str(exc))
    typer.echo(path.read_text(encoding="utf-8"), nl=False)


def register(app: typer.Typer) -> None:
    app.command("recipes")(recipes)
