"""What a study leaves in ``--out``: best config, all trials, summary, plots."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from medxfer.config import TrainConfig


def _save_plot(make: Callable[[], Any], path: Path) -> str | None:
    """Draw one optuna matplotlib plot into ``path``; returns why it was skipped, or None."""
    import numpy as np

    from medxfer.io import atomic_write_bytes, figure_png, pyplot

    pyplot()  # optuna's plots draw with pyplot: Agg first

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
            ax = make()
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:
        return f"{type(exc).__name__}: {exc}"
    first = np.ravel(ax)[0] if isinstance(ax, np.ndarray) else ax
    fig = first.figure
    fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
    atomic_write_bytes(path, figure_png(fig, dpi=100, tight=True))
    return None


def write_plots(study: optuna.Study, out: Path) -> dict[str, str]:
    """history.png, importance.png, parallel.png; returns ``{plot: reason}`` for skipped ones."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    skipped: dict[str, str] = {}
    if not complete:
        return {p: "no complete trial" for p in ("history", "importance", "parallel")}
    plots = {
        "history": lambda: vis.plot_optimization_history(study),
        "importance": lambda: vis.plot_param_importances(study),
        "parallel": lambda: vis.plot_parallel_coordinate(study),
    }
    for name, make in plots.items():
        if name != "history" and len(complete) < 2:
            skipped[name] = f"needs 2 complete trials, study has {len(complete)}"
            continue
        why = _save_plot(make, out / f"{name}.png")
        if why:
            skipped[name] = why
    return skipped


def write_outputs(
    study: optuna.Study,
    base: TrainConfig,
    out: Path,
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write ``best_config.yaml``, ``trials.csv``, ``summary.json`` and plots; returns the summary."""
    from optuna.trial import TrialState

    from medxfer.config import save_config
    from medxfer.io import atomic_write_text
    from medxfer.tuning.space import apply_params

    out.mkdir(parents=True, exist_ok=True)
    df = study.trials_dataframe()
    atomic_write_text(out / "trials.csv", df.to_csv(index=False))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
        "running": states.count(TrialState.RUNNING),
        **(extra or {}),
    }
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        cfg = apply_params(base, best.params)
        cfg.name = f"{base.name}-tuned"
        save_config(cfg, out / "best_config.yaml")
        summary.update(best_value=best.value, best_trial=best.number, best_params=best.params)
    else:
        log("no complete trial yet: best_config.yaml not written")
    summary["plots_skipped"] = write_plots(study, out)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
