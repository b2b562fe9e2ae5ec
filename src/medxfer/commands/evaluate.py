"""``medxfer evaluate``, ``medxfer explain`` and ``medxfer compare``: judging trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medxfer.commands.common import DATA_HELP, echo_err, fail

if TYPE_CHECKING:
    from medxfer.workflow.evaluating import EvaluationOutcome


def _headline(result: dict) -> str:
    from medxfer.evaluate.report import HEADLINE, fmt_ci

    lines = [f"{label:<18} {fmt_ci(result['ci'].get(key))}" for key, label in HEADLINE]
    return "\n".join(lines)


def _specs(data: list[str] | None, more: list[str] | None) -> list[str] | None:
    """``--data A B`` (B arrives as an extra argument) or ``--data A --data B``; None: the run's own data."""
    if more and not data:
        fail(f"unexpected argument(s) {' '.join(more)}: datasets follow --data (e.g. --data A B)")
    return [*(data or []), *(more or [])] or None


def _print_results(done: EvaluationOutcome) -> None:
    """On stdout: per set, its size, rule, headline metrics with CIs and report; then generalisation."""
    for s, result in zip(done.sets, done.results, strict=True):
        unit = result["bootstrap"]["unit"]
        print(f"== {result['name']}: {s.describe()}")
        print(
            f"{result['n_images']} images, {result['n_patients']} patients; {result['rule']}; CI over {unit}s"
        )
        print(_headline(result))
        if "stress" in result:
            from medxfer.evaluate.stress_report import summary_text

            print(summary_text(result["stress"]))
        print(f"report: {result['report']}")
    if done.generalisation is not None:
        from medxfer.evaluate.generalisation import render_markdown

        gen = done.generalisation
        print(render_markdown(gen, "Generalisation").split("\n", 4)[-1])
        print(f"generalisation report: {gen['report']}")


def evaluate(
    run: Path = typer.Argument(..., help="Run folder (model.json + model.safetensors)."),
    more: list[str] | None = typer.Argument(None, hidden=True, metavar="MORE_DATA"),
    data: list[str] | None = typer.Option(
        None,
        "--data",
        help=DATA_HELP + " Default: the run's own data. Several: --data A B. A dataset with images in "
        "RUN/splits.csv is internal (scored on --split); any other is external (its test/ split if it has "
        "one, else every image; images seen in training are left out).",
    ),
    task: str | None = typer.Option(
        None, "--task", help="Label task; default: data.task of RUN/config.yaml."
    ),
    label_map: list[str] | None = typer.Option(
        None,
        "--label-map",
        metavar="RAW=CLASS",
        help="RAW=CLASS: score a label as one of the model's classes (RAW=- drops it); repeatable.",
    ),
    drop_unknown: bool = typer.Option(
        False,
        "--drop-unknown",
        help="Leave out images whose label the model does not know (counts are reported); "
        "default: such data is an error.",
    ),
    splits: Path | None = typer.Option(
        None, "--splits", help="splits.csv; default: RUN/splits.csv if present."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Internal split: train, val, test or all (default: test if the run has one, else val).",
    ),
    tta: bool | None = typer.Option(
        None,
        "--tta/--no-tta",
        help="Average identity and 4 small shifts: the TTA of `predict --tta` (no flips); default: the run's "
        "own model.tta. Evaluations with TTA are named SET-tta.",
    ),
    name: str | None = typer.Option(None, "--name", help="Output folder RUN/eval/NAME (one set only)."),
    worst: int = typer.Option(12, "--worst", min=0, help="Highest-loss images in the Grad-CAM gallery."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap replicates for the 95% CIs."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    leak_check: bool = typer.Option(
        True,
        "--leak-check/--no-leak-check",
        help="Look for training images (same bytes, near copies) in external data.",
    ),
    choose_threshold: str | None = typer.Option(
        None,
        "--choose-threshold",
        help="Binary: pick the threshold on the val split (youden | sens:0.95) first.",
    ),
    calibrate_on: str | None = typer.Option(
        None,
        "--calibrate-on",
        help="Local labelled data (LAYOUT:PATH): fit temperature and/or threshold on part of it, store "
        "them in model.json (predict/serve use them) and report on the other part.",
    ),
    calibrate_fit: str = typer.Option(
        "both", "--calibrate-fit", help="both | temperature | threshold (binary)."
    ),
    calibrate_fraction: float = typer.Option(
        0.5, "--calibrate-fraction", help="Share of the local images (whole patients) used to fit."
    ),
    stress: bool = typer.Option(
        False,
        "--stress",
        help="Also score the images under acquisition shifts (exposure, gamma, contrast, blur, noise, "
        "JPEG, zoom, rotation, low resolution; 3 severities): stress.csv/json/png + a report section.",
    ),
    stress_images: int = typer.Option(
        300,
        "--stress-images",
        min=0,
        help="Images the stress test uses: a sample of whole patients per class (0: every image).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Metrics with patient-level bootstrap CIs, plots, worst cases with Grad-CAM and report.html.

    Internal data gives RUN/eval/<split>/; each external dataset RUN/eval/external-<name>/ and, with
    the run's val/test evaluations, the generalisation table RUN/eval/generalisation/.
    """
    from medxfer.data.datasets import DatasetError, parse_label_map
    from medxfer.workflow.evaluating import Calibration
    from medxfer.workflow.evaluating import evaluate as run_evaluation

    local = Calibration(calibrate_on, calibrate_fit, calibrate_fraction) if calibrate_on else None
    try:
        done = run_evaluation(
            run,
            _specs(data, more),
            split=split,
            task=task,
            splits=splits,
            label_map=parse_label_map(label_map or []),
            drop_unknown=drop_unknown,
            name=name,
            tta=tta,
            worst=worst,
            batch_size=batch_size,
            n_boot=n_boot,
            seed=seed,
            leak_check=leak_check,
            stress=stress,
            stress_images=stress_images,
            progress=not quiet,
            threshold_rule=choose_threshold,
            calibration=local,
            log=echo_err,
        )
    except (DatasetError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    _print_results(done)


def explain(
    run: Path = typer.Argument(..., help="Run folder."),
    images: list[Path] = typer.Argument(..., help="Image files, folders (searched recursively) or globs."),
    out: Path = typer.Option(..., "--out", help="Folder for the overlay PNGs (created)."),
    class_name: str | None = typer.Option(
        None, "--class", help="Class to explain: a class name, 'all', or default the predicted class."
    ),
    force: bool = typer.Option(False, "--force", help="Replace overlay files that already exist."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Grad-CAM overlays: one PNG per image (per class with --class all), named IMAGE_gradcam_CLASS.png."""
    from medxfer.data.images import ImageError
    from medxfer.inference.cams import explain_files

    if not (run / "model.json").is_file():
        fail(f"{run}: not a medxfer run folder (no model.json)")
    from medxfer.inference.files import collect_inputs

    try:
        files = collect_inputs([str(p) for p in images])
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    try:
        written = explain_files(run, files, out, class_name, force=force, progress=not quiet)
    except (ValueError, ImageError, FileExistsError) as exc:
        fail(str(exc))
    for path, label, prob in written:
        print(f"{path}\t{label}\tP={prob:.3f}")


def compare(
    runs: list[Path] = typer.Argument(
        ..., help="Run folders to compare, or evaluation folders (RUN/eval/NAME) for a generalisation table."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Table file: .md, .csv or .html (+ a .png bar chart for runs)."
    ),
    metric: str = typer.Option("roc_auc", "--metric", help="Metric of the bar chart (a metrics.json key)."),
    eval_name: str = typer.Option(
        "test", "--eval", help="Evaluation (RUN/eval/NAME) shown in the bar chart; no other is mixed in."
    ),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap replicates (evaluation folders)."),
) -> None:
    """One table, a row per run: backbone, weights, params, size, training cost, metrics with CIs per split.

    Given evaluation folders instead (e.g. RUN/eval/val RUN/eval/test RUN/eval/external-x): the
    generalisation table, a row per evaluation and source, with the drop from internal.
    """
    from medxfer.evaluate.compare import compare_runs
    from medxfer.evaluate.generalisation import compare_evals

    evals = [p for p in runs if (p / "metrics.json").is_file()]
    if evals and len(evals) != len(runs):
        fail("give run folders or evaluation folders (RUN/eval/NAME), not both")
    try:
        if evals:
            table = compare_evals(evals, out, n_boot=n_boot)
        else:
            table = compare_runs(runs, out, metric=metric, eval_name=eval_name)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print(table, end="")
    if out is not None:
        echo_err(
            f"wrote {out}"
            + ("" if evals else f" and {out.with_suffix('.png')} ({metric} of --eval {eval_name})")
        )


def register(app: typer.Typer) -> None:
    """Add ``evaluate``, ``explain`` and ``compare`` to the CLI."""
    app.command("evaluate")(evaluate)
    app.command("explain")(explain)
    app.command("compare")(compare)
