"""``medxfer train``: from a config to a run folder.

Steps: resolve data and splits -> build the model and its preprocessing -> decode images once
(cache) -> Lightning fit over the configured stages -> best weights into ``model.safetensors`` +
``model.json`` -> ``train_summary.json``. A killed run continues with ``resume=True``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from medxfer.config import TrainConfig, load_config, save_config
from medxfer.io import atomic_write_text
from medxfer.runs import MODEL_JSON
from medxfer.training.pieces import TrainResult, is_ddp_child


class RunExistsError(FileExistsError):
    """The output folder already holds a run and neither resume nor overwrite was asked for."""


def prepare_run_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber another run; never delete anything (overwrite only replaces our own files)."""
    if resume:
        if not (out_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"{out_dir}: nothing to resume (no config.yaml)")
        if (out_dir / "ensemble.json").is_file():  # its config.yaml is a member's: resuming would replace it
            raise RunExistsError(
                f"{out_dir}: an ensemble of trained runs (`medxfer ensemble`), not a training run; "
                "resume its member runs (listed in ensemble.json) and build the ensemble again"
            )
        if (out_dir / MODEL_JSON).is_file() and not (out_dir / "checkpoints" / "last.ckpt").is_file():
            raise RunExistsError(  # resuming would train a new model over the finished one
                f"{out_dir}: a trained model with no checkpoints/last.ckpt to resume from; "
                "use --overwrite with the config to train it again, or choose another --out"
            )
        return
    # A folder holding only config.yaml/splits.csv is a run that failed before its first epoch (e.g. weights
    # unavailable): it may be started again. One with a checkpoint or a model is a run.
    busy = out_dir.exists() and any((out_dir / n).exists() for n in (MODEL_JSON, "checkpoints"))
    if busy and not overwrite:
        raise RunExistsError(
            f"{out_dir} already holds a run; use --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def resolve_data(cfg: TrainConfig, run_dir: Path, resume: bool, progress: bool = True):  # noqa: ANN201
    """The one data path (:mod:`medxfer.data.resolve`) for a run: a resumed run keeps its split; a new
    one is checked (cached), split under ``data.duplicates``, and gets ``check.json`` + ``splits.csv``.

    Raises :class:`~medxfer.data.leaks.LeakError` when duplicates straddle splits (unless allowed).
    """
    from medxfer.data.leaks import patient_note
    from medxfer.data.resolve import checked_split, load_table
    from medxfer.data.splits import apply_splits, save_splits

    table = load_table(cfg.data)
    if resume:  # the run's own split; its check.json was written when it started
        return apply_splits(table, run_dir / "splits.csv")
    table, report = checked_split(table, cfg.data, input_size=cfg.model.input_size, progress=progress)
    for line in [*report.warnings, patient_note(table)]:
        if line:
            print(f"check: {line}", file=sys.stderr)
    atomic_write_text(run_dir / "check.json", json.dumps(report.to_dict(), indent=2, default=str))
    save_splits(table, run_dir / "splits.csv")
    return table


def train_run(
    config: TrainConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    epoch_callback: Any = None,
    progress: bool = True,
    verbose: bool = False,
) -> TrainResult:
    """Train ``config`` into ``out_dir`` (see module docstring); ``resume`` continues a killed run
    from ``out_dir/checkpoints/last.ckpt`` with the config saved in the run. ``verbose``: third-party tips
    and warnings too (:func:`medxfer.training.quiet.quiet_fit`).

    Example::

        result = train_run(load_config("kermany-binary"), "runs/kermany")
    """
    from medxfer.training.fit import fit
    from medxfer.training.quiet import quiet_fit

    run_dir = Path(out_dir)
    child = is_ddp_child()
    if not child:
        prepare_run_dir(run_dir, resume, overwrite)
    cfg = load_config(run_dir / "config.yaml") if resume else config
    if cfg is None:
        raise ValueError("train_run needs a config unless resume=True")
    # DDP ranks > 0 re-run the command line after rank 0 has written the run's config and splits.
    table = resolve_data(cfg, run_dir, resume or child, progress=progress)
    if not (resume or child):
        save_config(cfg, run_dir / "config.yaml")
    start = time.perf_counter()
    with quiet_fit(verbose):
        result = fit(cfg, table, run_dir, resume=resume, epoch_callback=epoch_callback, progress=progress)
    result.seconds = time.perf_counter() - start
    if child:
        return result
    summary = json.loads((run_dir / "train_summary.json").read_text())
    summary["seconds"] = round(result.seconds, 1)
    atomic_write_text(run_dir / "train_summary.json", json.dumps(summary, indent=2))
    from medxfer.training.summary import SUMMARY_TXT, run_summary

    atomic_write_text(run_dir / SUMMARY_TXT, run_summary(run_dir))
    return result
