"""Evaluation images stay out of pretraining: an image a classifier is later judged on must not have
shaped its features, nor may a copy or near-copy of it.

The evaluation images are the ``val``/``test`` rows of a ``--splits`` file and the ``exclude_paths`` of
the settings (a recipe's validation split, see :mod:`medxfer.pretraining.recipes`). They and every
image in one duplicate group with them (exact copies, and near-copies by the dHash + thumbnail test of
``medxfer check``: :func:`medxfer.data.check.duplicate_index_groups`) are left out and counted in the
card. ``include_eval`` keeps them, with a warning that names them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from medxfer.pretraining.card import PretrainSettings
from medxfer.pretraining.images import PretrainError


def eval_paths_of_splits(path: str) -> list[str]:
    """The ``val`` and ``test`` paths of a splits.csv (columns ``path`` and ``split``)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise PretrainError(f"--splits {path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PretrainError(f"--splits {path}: not a readable splits CSV ({exc})") from None
    absent = [c for c in ("path", "split") if c not in frame.columns]
    if absent:
        raise PretrainError(f"--splits {path}: missing column(s) {', '.join(absent)}; needs path and split")
    return list(frame.loc[frame["split"].isin(["val", "test"]), "path"])


def near_copies(pool: Sequence[str], held_out: Sequence[str], progress: bool = False) -> set[str]:
    """Paths of ``pool`` in one exact or near-duplicate group with an image of ``held_out``."""
    from medxfer.data.check import duplicate_index_groups
    from medxfer.data.scan import scan_files_cached

    held = [p for p in held_out if os.path.isfile(p)]
    if not pool or not held:
        return set()
    paths = [*pool, *held]
    exact, near = duplicate_index_groups(scan_files_cached(paths, progress=progress))
    n, out = len(pool), set()
    for group in exact + near:
        if any(i >= n for i in group):
            out.update(paths[i] for i in group if i < n)
    return out


def left_out(
    paths: list[str], settings: PretrainSettings, progress: bool = False
) -> tuple[list[str], dict[str, int]]:
    """``paths`` without the evaluation images and their near-copies; the counts for the card."""
    held = list(settings.exclude_paths)
    if settings.splits:
        held += eval_paths_of_splits(settings.splits)
    if not held:
        return paths, {}
    key = {os.path.abspath(p) for p in held}
    in_pool = [p for p in paths if os.path.abspath(p) in key]
    if settings.include_eval:
        if in_pool:
            shown = ", ".join(in_pool[:5]) + (f" and {len(in_pool) - 5} more" if len(in_pool) > 5 else "")
            print(
                f"warning: pretraining on {len(in_pool)} evaluation image(s) (--include-eval): {shown}",
                file=sys.stderr,
            )
        return paths, {"evaluation_included": len(in_pool)}
    rest = [p for p in paths if os.path.abspath(p) not in key]
    copies = near_copies(rest, sorted(key), progress)
    kept = [p for p in rest if p not in copies]
    return kept, {"evaluation": len(in_pool), "near_duplicates": len(copies)}
