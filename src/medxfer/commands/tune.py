"""``medxfer tune``: Optuna search over the training config (full or fast head-only mode)."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import fail


def tune(
    config: Path | None = typer.Option(None, "--config", "-c", help="Base YAML recipe (see configs/)."),
    trials: int = typer.Option(20, help="Finished (complete + pruned) trials the study should end with."),
    timeout: float | None = typer.Option(None, help="Stop starting trials after this many seconds."),
    storage: str | None = typer.Option(
        None, help="SQLAlchemy URL of the study storage (default sqlite:///runs/tune.db)."
    ),
    study: str | None = typer.Option(None, help="Study name (default: <config name>-<full|fast>)."),
    space: Path | None = typer.Option(None, help="Search space YAML (default: the shipped tune_space.yaml)."),
    fast: bool = typer.Option(False, "--fast", help="Search head-only settings on cached frozen features."),
    features: Path | None = typer.Option(
        None, help="Fast mode: a `medxfer features` file to train heads on."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default runs/tune/<study>)."),
    pruner: str = typer.Option("median", help="median | hyperband | none."),
    seed: int | None = typer.Option(0, help="TPE sampler seed (give each parallel worker its own)."),
    sets: list[str] | None = typer.Option(
        None, "--set", help="Override a base config key: --set train.monitor=val_loss"
    ),
    threads: int = typer.Option(1, help="torch CPU threads per fast trial."),
) -> None:
    """Search hyperparameters with Optuna (TPE + pruning); resumable, several processes may share a study."""
    from medxfer.api import tune as api_tune
    from medxfer.config import ConfigError, parse_override
    from medxfer.data.datasets import DatasetError

    try:
        summary = api_tune(
            config,
            trials,
            fast=fast,
            storage=storage,
            study=study,
            out=out,
            features=features,
            log=typer.echo,
            timeout=timeout,
            space=space,
            pruner=pruner,
            seed=seed,
            overrides=dict(parse_override(s) for s in sets or []),
            threads=threads,
        )
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(
        f"study {summary['study']}: {summary['complete']} complete, {summary['pruned']} pruned, "
        f"{summary['failed']} failed; best {summary.get('best_value')} (trial {summary.get('best_trial')})"
    )


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the CLI."""
    app.command("tune")(tune)
