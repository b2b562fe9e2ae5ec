"""``medxfer demo``: the README's main job."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from medxfer.commands.common import fail, quiet_lightning


def demo(
    data: Path | None = typer.Option(None, help="Kermany folder (default $MEDXFER_SHARED_DATA/kermany)."),
    out: Path | None = typer.Option(None, help="New run folder (default runs/demo-<time>)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a key of the demo recipe."),
    quiet: bool = typer.Option(False, help="No progress bars, no Lightning tips or warnings."),
) -> None:
    """check -> split -> train -> evaluate on the Kermany chest X-rays; prints the report's path."""
    from medxfer.demo import default_data, run_demo

    data = data or default_data()
    if not data.is_dir():
        fail(f"{data}: Kermany folder not found; pass --data DIR or set MEDXFER_SHARED_DATA")
    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if out.exists():
        fail(f"{out} already exists; choose a new --out")
    start = time.perf_counter()
    with quiet_lightning(quiet):
        metrics = run_demo(data, out, sets, progress=not quiet)
    auc, ci = metrics["metrics"].get("roc_auc"), metrics.get("ci", {}).get("roc_auc")
    ok = isinstance(ci, dict) and ci.get("low") is not None and ci.get("high") is not None
    ci_text = f" (95% CI {ci['low']:.3f}-{ci['high']:.3f}, patients resampled)" if ok else ""
    typer.echo(f"test ROC AUC: {auc:.3f}{ci_text}   ({time.perf_counter() - start:.0f} s in all)")
    typer.echo(f"report: {metrics['report']}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
