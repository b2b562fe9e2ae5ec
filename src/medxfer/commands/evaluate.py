"""``medxfer evaluate``, ``medxfer explain`` and ``medxfer compare``: judging trained runs."""

from __future__ import annotations

from pathlib import Path

import typer

from medxfer.commands.common import DATA_HELP, echo_err, fail, load_data


def _run_task(run: Path) -> str | None:
    """``data.task`` of ``RUN/config.yaml`` if present."""
    config = run / "config.yaml"
    if not config.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        fail(f"{config}: not valid YAML ({exc})")
    section = data.get("data") if isinstance(data, dict) else None
    return section.get("task") if isinstance(section, dict) else None


def _headline(result: dict) -> str:
    from medxfer.evaluate.report import HEADLINE, fmt_ci

    lines = [f"{label:<18} {fmt_ci(result['ci'].get(key))}" for key, label in HEADLINE]
    return "\n".join(lines)


def evaluate(
    run: Path = typer.Argument(..., help="Run folder (model.json + model.safetensors)."),
    data: list[str] = typer.Option(..., "--data", help=DATA_HELP),
    task: str | None = typer.Option(
        None, "--task", help="Label task; default: data.task of RUN/config.yaml."
    ),
    splits: Path | None = typer.Option(
        None, "--splits", help="splits.csv; default: RUN/splits.csv if present."
    ),
    split: str = typer.Option("test", "--split", help="Split to evaluate: train, val, test, or all."),
    tta: bool = typer.Option(
        False, "--tta", help="Average identity, 4 small shifts and a 5% zoom (no flips)."
    ),
    name: str | None = typer.Option(None, "--name", help="Output folder RUN/eval/NAME (default: the split)."),
    worst: int = typer.Option(12, "--worst", min=0, help="Highest-loss images in the Grad-CAM gallery."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap replicates for the 95% CIs."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    choose_threshold: str | None = typer.Option(
        None,
        "--choose-threshold",
        help="Binary: pick the threshold on the val split (youden | sens:0.95) first.",
    ),
    stress: bool = typer.Option(
        False,
        "--stress",
        help="Also score the images under acquisition shifts (exposure, gamma, contrast, blur, noise, "
        "JPEG, zoom, rotation, low resolution; 3 severities): stress.csv/json/png + a report section.",
    ),
) -> None:
    """Metrics with patient-level bootstrap CIs, plots, worst cases with Grad-CAM and report.html."""
    from medxfer.evaluate import runner

    if not (run / "model.json").is_file():
        fail(f"{run}: not a medxfer run folder (no model.json); train one first")
    splits = (
        splits if splits is not None else (run / "splits.csv" if (run / "splits.csv").is_file() else None)
    )
    if splits is None and split != "all":
        fail(f"no --splits given and {run / 'splits.csv'} does not exist; pass --splits FILE or --split all")
    if splits is not None and not splits.is_file():
        fail(f"{splits}: splits file not found")
    table = load_data(data, task=task or _run_task(run), splits=splits)
    try:
        if choose_threshold:
            t = runner.choose_threshold(
                run, runner.select_split(table, "val"), choose_threshold, batch_size, tta
            )
            echo_err(
                f"threshold {t:.4f} ({choose_threshold} on the val split) written to {run / 'model.json'}"
            )
        result = runner.evaluate_run(
            run,
            table,
            split=None if split == "all" else split,
            name=name,
            tta=tta,
            worst=worst,
            batch_size=batch_size,
            n_boot=n_boot,
            seed=seed,
            stress=stress,
        )
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    unit = result["bootstrap"]["unit"]
    print(
        f"{result['n_images']} images, {result['n_patients']} patients; {result['rule']}; 95% CI over {unit}s"
    )
    print(_headline(result))
    if stress:
        from medxfer.evaluate.stress import summary_text

        print(summary_text(result["stress"]))
    print(f"report: {result['report']}")


def explain(
    run: Path = typer.Argument(..., help="Run folder."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(..., "--out", help="Folder for the overlay PNGs (created)."),
    class_name: str | None = typer.Option(
        None, "--class", help="Class to explain: a class name, 'all', or default the predicted class."
    ),
    force: bool = typer.Option(False, "--force", help="Replace overlay files that already exist."),
) -> None:
    """Grad-CAM overlays: one PNG per image (per class with --class all), named IMAGE_gradcam_CLASS.png."""
    from medxfer.data.images import ImageError
    from medxfer.evaluate.explain import explain_files

    if not (run / "model.json").is_file():
        fail(f"{run}: not a medxfer run folder (no model.json)")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        fail(f"image(s) not found: {', '.join(missing)}")
    try:
        written = explain_files(run, [str(p) for p in images], out, class_name, force=force)
    except (ValueError, ImageError, FileExistsError) as exc:
        fail(str(exc))
    for path, label, prob in written:
        print(f"{path}\t{label}\tP={prob:.3f}")


def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders to compare."),
    out: Path | None = typer.Option(
        None, "--out", help="Table file: .md, .csv or .html (+ a .png bar chart)."
    ),
    metric: str = typer.Option("roc_auc", "--metric", help="Metric of the bar chart (a metrics.json key)."),
    eval_name: str = typer.Option(
        "test", "--eval", help="Evaluation (RUN/eval/NAME) shown in the bar chart."
    ),
) -> None:
    """One table, a row per run: backbone, weights, params, size, training cost, metrics with CIs."""
    from medxfer.evaluate.compare import compare_runs

    try:
        table = compare_runs(runs, out, metric=metric, eval_name=eval_name)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print(table, end="")
    if out is not None:
        echo_err(f"wrote {out} and {out.with_suffix('.png')}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate``, ``explain`` and ``compare`` to the CLI."""
    app.command("evaluate")(evaluate)
    app.command("explain")(explain)
    app.command("compare")(compare)
