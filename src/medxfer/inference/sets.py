"""Which images an evaluation scores: the run's own split (internal) or data it never saw (external).

The rule is decided per ``--data`` spec, so a call that mixes both kinds is unambiguous:

- a spec any of whose images is listed in the run's ``splits.csv`` is **internal**. Internal specs are
  loaded together, the run's splits applied, and one split scored (default: ``test`` when the run has
  one, else ``val``);
- every other spec is **external** and is scored on its own: the layout's own ``test`` split when it has
  one (a Kermany download's ``test/``), else every image.

Labels the model does not know (``covid`` for a normal/pneumonia model) are never dropped in silence:
an external set that has some is refused with their counts unless ``drop_unknown`` (then it is scored
without them and the counts are stated); class folders match the model's classes ignoring case. The
policy is :func:`medxfer.data.datasets.refuse_unknown`.

An external image that is also one of the run's train/val images — the same path, the same bytes, or a
near duplicate by ``medxfer check``'s finder (dHash within 4 bits and alike thumbnails) — is a leak: it
is listed (``leaks.csv`` and the report) and left out of the external score, with a warning.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from medxfer.data.datasets import ImageTable
    from medxfer.inference.evaluation import Scoring

SEEN_SPLITS = ("train", "val")  # the images the model was fitted or selected on


@dataclass
class EvalSet:
    """One set of images to score and what it is (``kind`` internal | external)."""

    name: str
    kind: str
    table: ImageTable
    specs: list[str]
    split: str | None = None  # internal: the split of RUN/splits.csv scored (None: all rows)
    scope: str = ""  # external: "the layout's test split" | "every image"
    leaks: list[dict[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the terminal and the report, e.g. ``external: 624 images, 0 seen in training``."""
        if self.kind == "internal":
            note = f"; {self.scope}" if self.scope else ""
            return f"internal ({self.split} split of the run): {len(self.table)} images{note}"
        seen = f"{len(self.leaks)} seen in training"
        if self.leaks:
            seen += " (excluded from the score)"
        return (
            f"external ({', '.join(self.specs)}: {self.scope}): {len(self.table)} images, {seen}"
            f"{self.dropped_note()}"
        )

    def dropped_note(self) -> str:
        """``; dropped (labels the model does not know): covid: 10 images`` or ``""``."""
        from medxfer.data.datasets import unknown_text

        unknown = self.table.unknown
        return f"; dropped (labels the model does not know): {unknown_text(unknown)}" if unknown else ""

    def about(self) -> dict[str, Any]:
        """The ``set`` entry of ``metrics.json``."""
        return {
            "kind": self.kind,
            "specs": list(self.specs),
            "split": self.split,
            "scope": self.scope,
            "description": self.describe(),
            "n_leaks": len(self.leaks),
            "dropped_unknown": dict(self.table.unknown),
        }


def read_listed(splits_path: str | os.PathLike[str] | None) -> pd.DataFrame | None:
    """The rows of a run's ``splits.csv`` (path, split, ...), or None when there is no such file."""
    from medxfer.data.splits import read_splits

    if splits_path is None or not Path(splits_path).is_file():
        return None
    frame = read_splits(splits_path)
    if "path" not in frame.columns or "split" not in frame.columns:
        raise ValueError(f"{splits_path}: a splits file needs path and split columns")
    return frame


def external_rows(table: ImageTable) -> tuple[ImageTable, str]:
    """The layout's own ``test`` split when it has one, else every image; with a description."""
    test = table.table["split"] == "test"
    if test.any():
        return table.with_table(table.table[test]), "the layout's test split"
    return table, "every image"


def set_name(spec: str, taken: set[str]) -> str:
    """``external-<folder or file name>``, numbered when taken (folder names may repeat)."""
    from medxfer.data.datasets import parse_spec

    _, path, _ = parse_spec(spec)
    path = Path(os.path.abspath(path))
    stem = path.name if not path.suffix else f"{path.parent.name}-{path.stem}"
    base = "external-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "data")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def find_leaks(
    table: ImageTable, seen: pd.DataFrame, workers: int = 2, progress: bool = False
) -> list[dict[str, str]]:
    """External images that are seen images too: same path, same bytes or near duplicate.

    ``seen`` holds the run's train/val rows of splits.csv (``path``, ``split``). Returns one record per
    leaked external image: ``path``, ``match`` (same path | same bytes | near duplicate), ``seen_path``,
    ``seen_split``. Seen files that no longer exist are skipped (they cannot be compared).
    """
    from medxfer.data.check import duplicate_index_groups
    from medxfer.data.scan import scan_files_cached

    ext = [str(p) for p in table.table["path"]]
    seen_paths = [str(p) for p in seen["path"]]
    split_of = dict(zip(seen_paths, seen["split"], strict=True))
    leaks: dict[str, dict[str, str]] = {}
    for p in ext:
        if p in split_of:
            leaks[p] = {"path": p, "match": "same path", "seen_path": p, "seen_split": split_of[p]}
    present = [p for p in seen_paths if os.path.isfile(p) and p not in leaks]
    # the run's images are read once (cached by path, size and mtime), not at every evaluation
    facts = scan_files_cached(present, workers, progress) + scan_files_cached(ext, workers, progress)
    exact, near = duplicate_index_groups(facts)
    n_seen = len(present)
    for groups, match in ((exact, "same bytes"), (near, "near duplicate")):
        for group in groups:
            seen_members = [i for i in group if i < n_seen]
            if not seen_members:
                continue
            first = present[seen_members[0]]
            for i in group:
                path = ext[i - n_seen] if i >= n_seen else None
                if path is not None and path not in leaks:
                    leaks[path] = {
                        "path": path,
                        "match": match,
                        "seen_path": first,
                        "seen_split": split_of[first],
                    }
    return [leaks[p] for p in ext if p in leaks]


def _load(
    specs: list[str],
    task: str | None,
    label_map: dict[str, str | None] | None,
    classes: list[str] | None = None,
) -> ImageTable:
    from medxfer.data.datasets import load_datasets

    return load_datasets(specs, task=task, label_map=label_map, classes=classes)


def internal_set(
    specs: list[str],
    splits_path: str | os.PathLike[str],
    split: str | None = None,
    task: str | None = None,
    label_map: dict[str, str | None] | None = None,
    classes: list[str] | None = None,
) -> EvalSet:
    """The run's own data with its splits applied; ``split`` None: test if present, else val; ``all``.

    ``classes``: the model's class names; labels it does not know are not in the run's splits (its task
    left them out of training too), so they stay out here as well.
    """
    from medxfer.data.splits import apply_splits
    from medxfer.inference.evaluation import select_split

    table = apply_splits(_load(specs, task, label_map, classes), splits_path)
    if split is None:
        split = "test" if (table.table["split"] == "test").any() else "val"
    sub = select_split(table, None if split == "all" else split)
    unlisted = int((table.table["split"] == "").sum())
    note = f"{unlisted} images of this data are in no split of the run and not scored" if unlisted else ""
    if split == "all":
        sub = sub.with_table(sub.table[sub.table["split"] != ""])
    return EvalSet(split, "internal", sub, list(specs), split=split, scope=note)


def plan_sets(
    specs: list[str],
    splits_path: str | os.PathLike[str] | None,
    split: str | None = None,
    task: str | None = None,
    label_map: dict[str, str | None] | None = None,
    leak_check: bool = True,
    classes: list[str] | None = None,
    drop_unknown: bool = False,
) -> list[EvalSet]:
    """Classify every spec (see the module doc) and return the sets to score, internal first.

    ``split``: the internal split (``None``: test if the run has one, else val; ``"all"``: every row).
    ``classes``: the model's class names (labels match them ignoring case); an external spec with other
    labels raises :class:`~medxfer.data.datasets.DatasetError` naming them, unless ``drop_unknown``.

    Example::

        sets = plan_sets(["kermany:new_hospital"], "runs/kb/splits.csv", task="kermany-binary")
        sets[0].describe()   # "external (kermany:new_hospital: the layout's test split): 624 images, ..."
    """
    from medxfer.data.datasets import refuse_unknown

    listed = read_listed(splits_path)
    listed_paths = set(listed["path"]) if listed is not None else set()
    internal, external = [], []
    for spec in specs:
        table = _load([spec], task, label_map, classes)
        (internal if table.table["path"].isin(listed_paths).any() else external).append((spec, table))
    sets: list[EvalSet] = []
    if internal:
        sets.append(internal_set([s for s, _ in internal], splits_path, split, task, label_map, classes))
    taken = {s.name for s in sets}
    for spec, table in external:
        refuse_unknown(table, [spec], drop_unknown)
        rows, scope = external_rows(table)
        seen = listed[listed["split"].isin(SEEN_SPLITS)] if listed is not None else None
        leaks = find_leaks(rows, seen) if leak_check and seen is not None and len(seen) else []
        leaked = {leak["path"] for leak in leaks}
        kept = rows.with_table(rows.table[~rows.table["path"].isin(leaked)])
        if len(kept) == 0:
            raise ValueError(f"{spec}: every one of its {len(rows)} images is a training image of the run")
        name = set_name(spec, taken)
        taken.add(name)
        sets.append(EvalSet(name, "external", kept, [spec], scope=scope, leaks=leaks))
    return sets


def run_data(run_dir: str | os.PathLike[str]) -> tuple[list[str], str | None, dict[str, str | None] | None]:
    """``data.specs``, ``data.task`` and ``data.label_map`` of ``RUN/config.yaml`` (empty when absent).

    Specs are absolute; a relative one (a run made before they were stored so) is found from the working
    directory or else from the run folder."""
    import yaml

    from medxfer.data.datasets import absolute_spec

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return [], None, None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    section = data.get("data") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return [], None, None
    specs = [absolute_spec(os.path.expandvars(str(s)), run_dir) for s in section.get("specs") or []]
    return specs, section.get("task"), section.get("label_map")


def is_current(folder: Path, run: Path) -> bool:
    """Whether ``folder`` holds an evaluation made with the run's current decision rule and calibration."""
    import json

    from medxfer.runs import read_model_info

    if not ((folder / "metrics.json").is_file() and (folder / "predictions.csv").is_file()):
        return False
    meta = json.loads((folder / "metrics.json").read_text())
    info = read_model_info(run)
    threshold = float(info.threshold) if info.num_classes == 2 else None
    return meta.get("threshold") == threshold and meta.get("temperature", 1.0) == info.temperature


def _score(
    run: Path, chosen: EvalSet, name: str, tta: bool, about: dict[str, Any], scoring: Scoring
) -> dict[str, Any]:
    """:func:`~medxfer.inference.evaluation.evaluate_run` on one set with ``scoring``'s settings."""
    from medxfer.inference.evaluation import evaluate_run

    return evaluate_run(
        run,
        chosen.table,
        None,
        name,
        tta,
        worst=scoring.worst,
        batch_size=scoring.batch_size,
        n_boot=scoring.n_boot,
        seed=scoring.seed,
        about=about,
        leaks=chosen.leaks,
        stress=scoring.stress,
        stress_images=scoring.stress_images,
        progress=scoring.progress,
    )


def _internal_split(
    run: Path, internal: tuple, split: str, suffix: str, tta: bool, log: Any, scoring: Scoring
) -> Path | None:
    """Evaluate the run's ``split`` for the generalisation table; None if it has none or its data is gone."""
    from medxfer.data.datasets import DatasetError
    from medxfer.runs import read_model_info

    classes = list(read_model_info(run).class_names)
    try:
        chosen = internal_set(internal[0], run / "splits.csv", split, internal[1], internal[2], classes)
    except (DatasetError, ValueError, FileNotFoundError) as exc:
        if log and split == "val":
            log(f"no internal val row in the generalisation table: the run's data cannot be loaded ({exc})")
        return None
    if log:
        log(f"{chosen.describe()}: evaluated for the generalisation table")
    no_stress = replace(scoring, stress=False)  # the stress test is for the sets asked for, not this one
    result = _score(run, chosen, chosen.name + suffix, tta, chosen.about(), no_stress)
    return Path(result["eval_dir"])


def evaluate_sets(
    run_dir: str | os.PathLike[str],
    sets: list[EvalSet],
    name: str | None = None,
    tta: bool | None = None,
    internal: tuple[list[str], str | None, dict[str, str | None] | None] | None = None,
    log: Any = None,
    scoring: Scoring | None = None,
) -> dict[str, Any]:
    """Score every set into ``RUN/eval/<set name>/``; with an external set also the generalisation table.

    The table (``RUN/eval/generalisation/``) holds the sets of this call plus the run's internal ``val``
    and ``test`` evaluations: existing ones are reused; a missing val evaluation is made first when
    ``internal`` (the run's specs, task, label_map) is given, as the threshold chosen on val needs it.
    ``scoring``: how each set is scored (:class:`~medxfer.inference.evaluation.Scoring`; None: defaults).
    Returns ``{"results": [metrics.json dicts], "generalisation": table dict or None}``.
    """
    from medxfer.evaluate.generalisation import write_generalisation
    from medxfer.inference.evaluation import Scoring
    from medxfer.inference.predictor import resolve_tta
    from medxfer.runs import read_model_info

    run = Path(run_dir)
    tta = resolve_tta(tta, read_model_info(run))  # names say what was measured: SET-tta with TTA
    suffix = "-tta" if tta else ""
    if name is not None and len(sets) > 1:
        raise ValueError(f"--name names one evaluation; this call has {len(sets)} sets")
    link = {"generalisation": f"../generalisation{suffix}/report.html"}

    scoring = scoring or Scoring()
    results = [
        _score(
            run,
            s,
            name or s.name + suffix,
            tta,
            {**s.about(), **(link if s.kind == "external" else {})},
            scoring,
        )
        for s in sets
    ]
    if not any(s.kind == "external" for s in sets):
        return {"results": results, "generalisation": None}
    dirs = [Path(r["eval_dir"]) for r in results]
    have = {r.get("split") for r, s in zip(results, sets, strict=True) if s.kind == "internal"}
    for split in ("val", "test"):
        if split in have:
            continue
        folder = run / "eval" / f"{split}{suffix}"
        if is_current(folder, run):
            dirs.append(folder)
        elif internal and internal[0] and (run / "splits.csv").is_file():
            made = _internal_split(run, internal, split, suffix, tta, log, scoring)
            dirs += [made] if made is not None else []
    title = f"medxfer generalisation: {run.name}"
    table = write_generalisation(
        dirs, run / "eval" / f"generalisation{suffix}", title, scoring.n_boot, scoring.seed
    )
    return {"results": results, "generalisation": table}
