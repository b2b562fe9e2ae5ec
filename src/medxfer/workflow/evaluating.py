"""Evaluating a run: the one path of ``medxfer evaluate`` and :meth:`medxfer.Run.evaluate`.

Every ``data`` spec is planned by :func:`medxfer.inference.sets.plan_sets` (internal: the run's own split;
external: data it never saw, copies of its train/val images left out), optionally a local calibration
set first, then :func:`medxfer.inference.sets.evaluate_sets` scores every set and, with an external set,
writes the generalisation table. Messages (what each set is, leaks) go to ``log``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medxfer.evaluate.results import Evaluation
    from medxfer.inference.sets import EvalSet

Log = Callable[[str], Any]
SPLITS = ("train", "val", "test", "all")


@dataclass
class OwnData:
    """The run's own data (``RUN/config.yaml``), the label task and the splits file evaluations use, the
    model's classes and whether labels it does not know are dropped (``drop_unknown``) or an error."""

    specs: list[str]
    task: str | None
    label_map: dict[str, str | None] | None
    splits: Path
    classes: list[str] = field(default_factory=list)
    drop_unknown: bool = False


@dataclass
class Calibration:
    """``--calibrate-on``: fit temperature and/or threshold on ``fraction`` of ``spec``'s images (whole
    patients), store them in model.json, report on the rest. ``fit``: both | temperature | threshold."""

    spec: str
    fit: str = "both"
    fraction: float = 0.5


@dataclass
class EvaluationOutcome:
    """What an evaluation scored: the sets (in order), their ``metrics.json`` dicts, the generalisation
    table (None without an external set), the calibration result and the chosen threshold (if asked)."""

    sets: list[EvalSet]
    results: list[dict[str, Any]]
    generalisation: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    threshold: float | None = None
    excluded: list[dict[str, str]] = field(default_factory=list)

    def evaluation(self) -> Evaluation:
        """The first set's :class:`~medxfer.evaluate.results.Evaluation`: the generalisation table on
        it, the evaluations of the further sets in its ``others``."""
        from medxfer.evaluate.results import Evaluation

        evaluations = [
            Evaluation(r, Path(r["eval_dir"]), Path(r["report"]), s.describe(), list(s.leaks))
            for s, r in zip(self.sets, self.results, strict=True)
        ]
        first = evaluations[0]
        first.generalisation, first.others = self.generalisation, evaluations[1:]
        return first


def check_run(run: Path, split: str | None) -> None:
    """Refuse a folder without ``model.json`` or an unknown ``split``, with the valid choices."""
    if not (run / "model.json").is_file():
        raise FileNotFoundError(f"{run}: not a medxfer run folder (no model.json); train one first")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r}: valid: {', '.join(SPLITS)}")


def own_data(
    run: Path,
    task: str | None = None,
    splits: str | os.PathLike[str] | None = None,
    label_map: Mapping[str, str | None] | None = None,
    drop_unknown: bool = False,
) -> OwnData:
    """The run's data specs, label map (``label_map`` over the run's own) and classes; ``task`` and
    ``splits`` or their defaults from the run."""
    from medxfer.inference.sets import run_data
    from medxfer.runs import read_model_info

    own_specs, own_task, own_map = run_data(run)
    path = Path(splits) if splits is not None else run / "splits.csv"
    if not path.is_file() and path != run / "splits.csv":
        raise FileNotFoundError(f"{path}: splits file not found")
    merged = {**(own_map or {}), **(label_map or {})} or None
    classes = list(read_model_info(run).class_names)
    return OwnData(own_specs, task or own_task, merged, path, classes, drop_unknown)


def data_specs(run: Path, data: str | Sequence[str] | None, own: OwnData) -> list[str]:
    """``data`` as a list of specs, or the run's own specs (an error when the run names none)."""
    specs = [data] if isinstance(data, str) else list(data or [])
    if specs:
        return specs
    if not own.specs:
        raise ValueError(f"no data given and {run / 'config.yaml'} names no data.specs; pass LAYOUT:PATH")
    return list(own.specs)


def leak_lines(sets: Sequence[EvalSet]) -> list[str]:
    """The warning about training/validation images found in external data (first 10 listed)."""
    lines = []
    for s in sets:
        if not s.leaks:
            continue
        lines.append(
            f"warning: {len(s.leaks)} image(s) of {', '.join(s.specs)} are training/validation images "
            "of the run (a leak); left out of the score and listed in leaks.csv:"
        )
        lines += [
            f"  {k['path']}: {k['match']}, {k['seen_split']} image {k['seen_path']}" for k in s.leaks[:10]
        ]
        if len(s.leaks) > 10:
            lines.append(f"  ... and {len(s.leaks) - 10} more")
    return lines


def announce(sets: Sequence[EvalSet], split: str | None, log: Log) -> None:
    """What each set is, a note when ``split`` has no internal set to apply to, and leaks."""
    if split is not None and not any(s.kind == "internal" for s in sets):
        log(f"note: split {split} applies to the run's own data; every dataset here is external")
    for s in sets:
        log(s.describe())
    for line in leak_lines(sets):
        log(line)


def calibrate(
    run: Path,
    own: OwnData,
    local: Calibration,
    leak_check: bool,
    log: Log,
    *,
    tta: bool | None,
    batch_size: int,
    n_boot: int,
    seed: int,
) -> tuple[EvalSet, dict[str, Any]]:
    """Fit the calibration on part of ``local.spec`` (model.json rewritten); the rest is the set to report on.

    See :func:`medxfer.inference.calibration.calibrate_local`.
    """
    from medxfer.inference.calibration import before_after_lines, calibrate_local

    rest, result = calibrate_local(
        run,
        local.spec,
        own.task,
        own.label_map,
        leak_check,
        fit=local.fit,
        fraction=local.fraction,
        seed=seed,
        batch_size=batch_size,
        tta=tta,
        n_boot=n_boot,
        drop_unknown=own.drop_unknown,
    )
    t = "" if result["threshold"] is None else f", threshold {result['threshold']:.4f}"
    log(
        f"calibration fitted on {result['fit_images']} images of {local.spec}: temperature "
        f"{result['temperature']:.3f}{t}; written to {run / 'model.json'}"
    )
    log(f"on the other {result['report_images']} images (never the fitted ones):")
    for line in before_after_lines(result):
        log("  " + line)
    return rest, result


def choose_threshold(
    run: Path, sets: Sequence[EvalSet], own: OwnData, rule: str, batch_size: int, tta: bool | None, log: Log
) -> float:
    """Pick the binary threshold by ``rule`` on the run's own val split; store it in model.json."""
    from medxfer.inference import calibration
    from medxfer.inference.sets import internal_set

    specs = next((s.specs for s in sets if s.kind == "internal"), own.specs)
    val = internal_set(specs, own.splits, "val", own.task, own.label_map, own.classes).table
    t = calibration.choose_threshold(run, val, rule, batch_size, tta)
    log(f"threshold {t:.4f} ({rule} on the val split) written to {run / 'model.json'}")
    return t


def evaluate(
    run_dir: str | os.PathLike[str],
    data: str | Sequence[str] | None = None,
    *,
    split: str | None = None,
    task: str | None = None,
    splits: str | os.PathLike[str] | None = None,
    label_map: Mapping[str, str | None] | None = None,
    drop_unknown: bool = False,
    name: str | None = None,
    tta: bool | None = None,
    worst: int = 12,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = 0,
    leak_check: bool = True,
    stress: bool = False,
    stress_images: int = 300,
    progress: bool = True,
    threshold_rule: str | None = None,
    calibration: Calibration | None = None,
    log: Log = print,
) -> EvaluationOutcome:
    """Plan the sets of ``data`` (default: the run's own), leave training copies out, score every set.

    ``split``: the internal split (None: test if the run has one, else val; ``all``: every listed row).
    ``label_map`` (RAW -> class, None drops) goes over the run's own; labels the model does not know
    are an error naming them unless ``drop_unknown``. ``stress_images``: the stress test's sample
    (0: all); ``progress``: tqdm bars. ``threshold_rule`` (``youden`` | ``sens:0.95``): choose the
    threshold on val first. Returns an :class:`EvaluationOutcome`; files in ``RUN/eval/<set>/``.

    Example::

        out = evaluate("runs/kb", "folder:new_hospital", n_boot=200)
        out.excluded   # external images that are copies of training images (not scored)
    """
    from medxfer.inference.evaluation import Scoring
    from medxfer.inference.sets import evaluate_sets, plan_sets

    run = Path(run_dir)
    check_run(run, split)
    own = own_data(run, task, splits, label_map, drop_unknown)
    specs = [] if calibration is not None and not data else data_specs(run, data, own)
    plan = (own.splits, split, own.task, own.label_map, leak_check, own.classes, own.drop_unknown)
    outcome = EvaluationOutcome(plan_sets(specs, *plan) if specs else [], [])
    if calibration is not None:
        rest, outcome.calibration = calibrate(
            run, own, calibration, leak_check, log, tta=tta, batch_size=batch_size, n_boot=n_boot, seed=seed
        )
        outcome.sets.insert(0, rest)
    announce(outcome.sets, split, log)
    if threshold_rule:
        outcome.threshold = choose_threshold(run, outcome.sets, own, threshold_rule, batch_size, tta, log)
    internal = (own.specs, own.task, own.label_map)
    scoring = Scoring(worst, batch_size, n_boot, seed, stress, stress_images, progress)
    done = evaluate_sets(run, outcome.sets, name, tta, internal, log, scoring)
    outcome.results, outcome.generalisation = done["results"], done["generalisation"]
    outcome.excluded = [leak for s in outcome.sets for leak in s.leaks]
    return outcome
