"""``medxfer crossval``: leave-source-out or patient-grouped K-fold validation of a recipe."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import echo_err, fail


def crossval(
    config: Path = typer.Option(..., "--config", "-c", help="YAML recipe (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (fold runs + crossval.md/csv/json)."),
    by: str = typer.Option("source", "--by", help="source (leave one source out) | patient (K folds)."),
    folds: int = typer.Option(5, "--folds", "-k", help="--by patient: number of folds."),
    fast: bool = typer.Option(
        False, "--fast", help="Train only the head, on cached frozen embeddings (minutes, not hours)."
    ),
    dedup: bool = typer.Option(
        True, "--dedup/--no-dedup", help="Keep near-duplicate images in one fold (check's finder)."
    ),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key: --set train.seed=1"),
    n_boot: int = typer.Option(200, "--n-boot", min=10, help="Bootstrap replicates for the 95% CIs."),
    seed: int = typer.Option(0, "--seed", help="Fold assignment (--by patient) and bootstrap seed."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads for --fast heads."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """One model per fold, each judged on its held-out fold (source or patients); the spread in one report."""
    from medxfer.config import ConfigError
    from medxfer.data.datasets import DatasetError
    from medxfer.tuning.crossval import CrossvalOptions, run_crossval

    if not config.is_file():
        fail(f"{config}: config file not found")
    opts = CrossvalOptions(
        config=config,
        out=out,
        by=by,
        folds=folds,
        fast=fast,
        dedup=dedup,
        overrides=list(sets or []),
        n_boot=n_boot,
        seed=seed,
        threads=threads,
        progress=not quiet,
    )
    try:
        summary = run_crossval(opts, log=echo_err)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    auc = summary["spread"].get("roc_auc", {})
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"{summary['n_folds']} folds by {by}: ROC AUC mean {fmt(auc.get('mean'))}, "
        f"sd {fmt(auc.get('sd'))}, min {fmt(auc.get('min'))}; pooled {fmt(summary['pooled']['roc_auc'])}"
    )
    print(f"report: {out / 'crossval.md'}")


def register(app: typer.Typer) -> None:
    """Add ``crossval`` to the CLI."""
    app.command("crossval")(crossval)
