"""``medxfer ensemble``: several trained runs saved as one run folder that predicts their mean probability.

The members must agree on the classes (in the same order), the output kind and the pixel preparation
(channels, mask boxes, resize mode, contrast ``preprocess``: applied once, at the ensemble's input
size). Their input sizes and normalisations may differ (Lite0 at 224 + Lite2 at 260 + MobileNetV2 with
ImageNet's mean/std): the ensemble's input is the largest member size, normalised with the first
member's mean/std (``model.json``'s ``input_size``/``mean``/``std``), and each member resizes
(bilinear, antialiased) and re-normalises it inside the network to its own ``input_size``/``mean``/
``std`` (recorded in its ``members`` entry). A member at a smaller size thus sees the image resized
twice (decoded -> largest size -> its size): its probabilities differ from its own run's by about what a
one-pixel shift of the image changes (on 16 Kermany X-rays, Lite0 inside a Lite0+Lite2+MobileNetV2
ensemble: max 0.045 with a random head, mean 0.023 / max 0.25 with a head fitted to X-rays, where a
one-pixel shift gives 0.016 / 0.17; no label changed). Their weights go
into one ``model.safetensors`` (keys ``members.<i>.*``), their networks into ``model.json``'s
``members``; :func:`medxfer.runs.load_model` rebuilds an :class:`~medxfer.models.ensemble.Ensemble`,
so predict, evaluate, explain, serve and export treat the result like any other run.

Splits: an ensemble is judged on images none of its members trained on. Members trained on the same
``splits.csv`` (the usual case: one recipe, different seeds) give it that file. Different splits are
refused unless ``allow_different_splits``; then the run gets a merged file in which an image is ``test``
only if it is test for every member that lists it, and ``train`` if any member trained on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxfer.inference.export import FORMATS
from medxfer.models.ensemble import EnsembleError
from medxfer.runs import MODEL_JSON, MODEL_WEIGHTS, MemberSpec, ModelInfo
from medxfer.training.summary import SUMMARY_TXT

__all__ = ["EnsembleError", "EnsembleResult", "build_ensemble"]

# model.json fields every member must share: one record describes the input and output of them all.
SHARED_FIELDS = ("class_names", "output", "channels", "mask_boxes", "resize", "preprocess")
INPUT_FIELDS = ("input_size", "mean", "std")  # each member's own; the ensemble's input is described below
SPLITS_CSV = "splits.csv"
NOTE_JSON = "ensemble.json"
PROVENANCE = ("config.yaml",)  # copied from the first member
TRAIN_SUMMARY = "train_summary.json"  # what the ensemble cost, every member's own (see _train_summary)
SUMMED = ("seconds", "fit_seconds", "params")
SPLIT_RANK = {"train": 0, "val": 1, "test": 2}  # merged splits: the most-seen use of an image wins


@dataclass
class EnsembleResult:
    """What :func:`build_ensemble` wrote."""

    path: Path
    members: list[Path]
    splits: str  # "shared", "merged" or "none"
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_ensemble(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    force: bool = False,
    allow_different_splits: bool = False,
) -> EnsembleResult:
    """Save the runs ``runs`` (2 to 16 trained run folders) as one ensemble run folder ``out``.

    Writes ``model.safetensors`` + ``model.json`` (``members``), ``splits.csv`` (see the module notes),
    the first member's ``config.yaml`` and ``check.json`` (same splits only), ``train_summary.json``
    (training time and parameters summed over all, each member's own summary), ``summary.txt`` and
    ``ensemble.json`` (every member's run, metrics and the splits decision). The decision threshold
    starts at 0.5 and the temperature at 1: the members' own were chosen for them, not for their mean.

    Raises :class:`EnsembleError` naming the run and field that differ, or the file that exists
    (without ``force``); FileNotFoundError / ModelInfoError for a folder that is not a valid run.

    Example::

        build_ensemble(["runs/kb-s1", "runs/kb-s2", "runs/kb-s3"], "runs/kb-ens")
    """
    from medxfer.models.ensemble import MAX_MEMBERS
    from medxfer.runs import read_model_info

    paths = [Path(r) for r in runs]
    if not 2 <= len(paths) <= MAX_MEMBERS:
        raise EnsembleError(f"an ensemble needs 2 to {MAX_MEMBERS} run folders, got {len(paths)}")
    if len({p.resolve() for p in paths}) != len(paths):
        raise EnsembleError("a run is listed twice; each member must be a different run folder")
    target = Path(out)
    if target.resolve() in {p.resolve() for p in paths}:
        raise EnsembleError(f"--out {target} is one of the members; write the ensemble to a new folder")
    infos = [read_model_info(p) for p in paths]
    _check_members(paths, infos)
    splits, splits_kind, notes = _splits(paths, allow_different_splits)
    notes += [
        f"{p}: its threshold {i.threshold:g} and temperature {i.temperature:g} are not the ensemble's"
        for p, i in zip(paths, infos, strict=True)
        if i.temperature != 1.0 or (i.num_classes == 2 and i.threshold != 0.5)
    ]
    files = _outputs(paths, splits, splits_kind)
    _refuse_overwrite(target, files, force)
    return _write(target, paths, infos, files, splits_kind, notes)


def _check_members(paths: list[Path], infos: list[ModelInfo]) -> None:
    """Every field of :data:`SHARED_FIELDS` equal to the first member's; no member an ensemble itself."""
    nested = [str(p) for p, i in zip(paths, infos, strict=True) if i.is_ensemble]
    if nested:
        raise EnsembleError(
            f"{', '.join(nested)}: already an ensemble; list its member runs instead (see its {NOTE_JSON})"
        )
    first = infos[0]
    problems = [
        f"field '{name}' is {_show(getattr(info, name))} in {path / MODEL_JSON}, "
        f"{_show(getattr(first, name))} in {paths[0] / MODEL_JSON}"
        for path, info in zip(paths[1:], infos[1:], strict=True)
        for name in SHARED_FIELDS
        if _norm(getattr(info, name)) != _norm(getattr(first, name))
    ]
    if problems:
        raise EnsembleError(
            "the runs cannot form one ensemble (members share classes in the same order, output kind, "
            "channels, mask boxes, resize mode and preprocess; input size and mean/std may differ): "
            + "; ".join(problems)
        )


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples and lists compare equal


def _show(value: Any) -> str:
    return json.dumps(value)


def _splits(paths: list[Path], allow_different: bool) -> tuple[bytes | None, str, list[str]]:
    """The ensemble's splits.csv (bytes or None), how it was made, and notes for the user."""
    import pandas as pd

    tables = [pd.read_csv(p / SPLITS_CSV, dtype=str) if (p / SPLITS_CSV).is_file() else None for p in paths]
    for path, table in zip(paths, tables, strict=True):
        if table is not None and not {"path", "split"} <= set(table.columns):
            raise EnsembleError(
                f"{path / SPLITS_CSV}: needs 'path' and 'split' columns, has {list(table.columns)}"
            )
    if all(t is None for t in tables):
        return None, "none", [f"no member has a {SPLITS_CSV}: evaluate the ensemble with --data"]
    maps = [None if t is None else dict(zip(t["path"], t["split"], strict=True)) for t in tables]
    if all(m == maps[0] for m in maps):
        return (paths[0] / SPLITS_CSV).read_bytes(), "shared", []
    differ = [str(p) for p, m in zip(paths[1:], maps[1:], strict=True) if m != maps[0]]
    if not allow_different:
        raise EnsembleError(
            f"{', '.join(differ)}: {SPLITS_CSV} differs from {paths[0]}'s. Evaluating an ensemble on a split "
            "that some member trained on is a leak; train the members on one splits.csv (data.splits) or "
            "pass --allow-different-splits to keep only images that no member trained on as val/test"
        )
    merged = _merge(tables)
    counts = merged["split"].value_counts().to_dict()
    notes = [
        f"members' splits differ: merged {SPLITS_CSV} (an image any member trained on is train): "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in SPLIT_RANK)
    ]
    notes += [
        f"{p} has no {SPLITS_CSV}: images it trained on are unknown"
        for p, t in zip(paths, tables, strict=True)
        if t is None
    ]
    return merged.to_csv(index=False).encode(), "merged", notes


def _merge(tables: list[Any]) -> Any:
    """One row per path; its split the lowest of :data:`SPLIT_RANK` over the members that list it."""
    import pandas as pd

    rows = pd.concat([t for t in tables if t is not None], ignore_index=True)
    unknown = sorted(set(rows["split"].dropna()) - set(SPLIT_RANK))
    if unknown:
        raise EnsembleError(f"{SPLITS_CSV}: unknown split value(s) {unknown}; expected train, val, test")
    rows["_rank"] = rows["split"].map(SPLIT_RANK)
    order = rows.drop_duplicates("path")["path"]  # rows in the order the members list them
    best = rows.sort_values("_rank", kind="stable").drop_duplicates("path").set_index("path")
    return best.loc[order].reset_index().drop(columns="_rank")


def _outputs(paths: list[Path], splits: bytes | None, splits_kind: str) -> dict[str, bytes]:
    """Files copied or made for the ensemble (model files and the note are written by :func:`_write`)."""
    files = {name: (paths[0] / name).read_bytes() for name in PROVENANCE if (paths[0] / name).is_file()}
    summary = _train_summary(paths)
    if summary is not None:
        files[TRAIN_SUMMARY] = (json.dumps(summary, indent=2) + "\n").encode()
    if splits is not None:
        files[SPLITS_CSV] = splits
    if splits_kind == "shared" and (paths[0] / "check.json").is_file():
        files["check.json"] = (paths[0] / "check.json").read_bytes()  # same data: the same warnings
    return files


def _train_summary(paths: list[Path]) -> dict[str, Any] | None:
    """``seconds``/``fit_seconds``/``params`` summed over all members (what the ensemble cost; ``compare``
    shows it) and every member's ``train_summary.json`` under ``members``. Nothing else: a member's
    backbone, epochs and val metrics are not the ensemble's (``medxfer evaluate ENS --split val`` scores it).
    """
    summaries = [
        json.loads((p / TRAIN_SUMMARY).read_text()) if (p / TRAIN_SUMMARY).is_file() else None for p in paths
    ]
    if summaries[0] is None:
        return None
    out: dict[str, Any] = {}
    for key in SUMMED:
        values = [s.get(key) if s else None for s in summaries]
        out[key] = None if any(v is None for v in values) else round(sum(values), 1)
    out["members"] = summaries
    return out


def _refuse_overwrite(target: Path, files: dict[str, bytes], force: bool) -> None:
    names = [MODEL_WEIGHTS, MODEL_JSON, NOTE_JSON, SUMMARY_TXT, *files]
    existing = [n for n in names if (target / n).exists()]
    if existing and not force:
        raise EnsembleError(
            f"{target}: already holds {', '.join(existing)}; "
            "pass --force to replace them or choose another --out"
        )
    exports = [n for n in FORMATS.values() if (target / n).exists()]
    if exports:  # an export of the old weights would no longer match the new model.json
        raise EnsembleError(
            f"{target}: holds {', '.join(exports)} exported from the model there, which the ensemble would "
            "replace; move it away or choose another --out"
        )


def _write(
    target: Path,
    paths: list[Path],
    infos: list[ModelInfo],
    files: dict[str, bytes],
    splits_kind: str,
    notes: list[str],
) -> EnsembleResult:
    from medxfer.io import atomic_write_bytes, atomic_write_text
    from medxfer.models.ensemble import Ensemble
    from medxfer.runs import load_model, member_inputs, save_model
    from medxfer.training.summary import run_summary

    members = [  # each member run has one network (_check_members)
        MemberSpec(
            **i.networks[0].model_dump(),
            run=str(p.resolve()),
            metrics=i.metrics,
            **{name: getattr(i, name) for name in INPUT_FIELDS},
        )
        for p, i in zip(paths, infos, strict=True)
    ]
    first = infos[0]
    info = ModelInfo(
        **{name: getattr(first, name) for name in SHARED_FIELDS},
        input_size=max(i.input_size for i in infos),  # the largest member's: no member upsamples
        mean=first.mean,
        std=first.std,
        tta=all(i.tta for i in infos),  # test-time augmentation by default only where every member had it
        members=members,
    )
    notes += _input_notes(info)
    source, inputs = member_inputs(info)
    ensemble = Ensemble([load_model(p)[0] for p in paths], output=first.output, inputs=inputs, source=source)
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(target / name, data)
    note = {
        "members": [m.model_dump() for m in members],
        "splits": splits_kind,
        "notes": notes,
        "provenance": str(paths[0].resolve()),
    }
    atomic_write_text(target / NOTE_JSON, json.dumps(note, indent=2) + "\n")
    save_model(target, ensemble, info)  # weights first, model.json last: a half-written run does not load
    atomic_write_text(target / SUMMARY_TXT, run_summary(target))
    written = [*files, NOTE_JSON, MODEL_WEIGHTS, MODEL_JSON, SUMMARY_TXT]
    if first.num_classes == 2:
        notes.append(
            "threshold 0.5: choose one on the val split with "
            f"`medxfer evaluate {target} --choose-threshold youden`"
        )
    return EnsembleResult(target, paths, splits_kind, written, notes)


def _input_notes(info: ModelInfo) -> list[str]:
    """What the ensemble's input is, when a member resizes or re-normalises it (none when all share one)."""
    differ = [
        f"{m.backbone} at {m.input_size} px"
        for m in info.members or []
        if _norm([getattr(m, k) for k in INPUT_FIELDS]) != _norm([info.input_size, info.mean, info.std])
    ]
    if not differ:
        return []
    return [
        f"input: {info.input_size} px normalised with the first member's mean/std; "
        f"{', '.join(differ)} resize and re-normalise it inside the network"
    ]
