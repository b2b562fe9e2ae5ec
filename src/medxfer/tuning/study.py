"""Study storage and the trial loop that several processes can share.

Storage is any SQLAlchemy URL; SQLite (the default, ``sqlite:///runs/tune.db``) gets WAL journaling
and a long busy timeout so processes on one machine can share it, and creating/loading a study is
retried on ``database is locked``. The loop ends a study with exactly ``n_trials`` finished
(complete + pruned) trials however many processes work on it: before a trial runs, the trials
finished or started before it are counted, and a trial that would exceed ``n_trials`` is recorded
as FAIL with the user attribute ``surplus`` and not run.
"""

from __future__ import annotations

import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///runs/tune.db"
PRUNERS = ("median", "hyperband", "none")
SQLITE_TIMEOUT_S = 120
HEARTBEAT_S = 30  # a process killed mid-trial leaves a RUNNING trial: failed after 4 missed beats


class SurplusTrial(Exception):
    """Raised inside a trial that would exceed the requested number of finished trials."""


def _retry(fn: Callable[[], Any], what: str, attempts: int = 8) -> Any:
    """Run ``fn``, retrying on a locked SQLite database or a creation race (with jitter)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for i in range(attempts):
        try:
            return fn()
        except (OperationalError, IntegrityError) as exc:
            if i == attempts - 1:
                raise RuntimeError(f"{what}: database busy after {attempts} tries ({exc})") from exc
            time.sleep(0.2 * (2**i) * (0.5 + random.random()))
    return None


def _prepare_sqlite(url: str) -> None:
    """Create the folder of a SQLite file and switch it to WAL (readers do not block the writer)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)

    def wal() -> None:
        con = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()

    for i in range(8):
        try:
            wal()
            return
        except sqlite3.OperationalError:
            time.sleep(0.2 * (i + 1))


def driver_url(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+psycopg://...`` (psycopg 3, the ``medxfer[postgres]`` extra)
    unless psycopg2, SQLAlchemy's default driver for that scheme, is installed; other URLs unchanged.
    Neither installed: :class:`~medxfer.io.MissingExtraError` naming the extra.

    >>> driver_url("sqlite:///runs/tune.db")
    'sqlite:///runs/tune.db'
    """
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg2") is None:
            from medxfer.io import require_extra

            require_extra("psycopg", "postgres", "--storage postgresql://")
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_storage(url: str | None = None) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url`` (default :data:`DEFAULT_STORAGE`), safe for several processes."""
    import optuna

    url = driver_url(url or DEFAULT_STORAGE)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}

    def create() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=4 * HEARTBEAT_S
            )

    return _retry(create, f"storage {url}")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """``median`` (after 3 trials and 1 epoch), ``hyperband`` (resources = epochs) or ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, max_epochs))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    direction: str,
    pruner: optuna.pruners.BasePruner,
    seed: int | None = 0,
) -> optuna.Study:
    """Create the study ``name`` or load it (``load_if_exists``), with a seeded TPE sampler.

    Give a distinct ``seed`` (or None: random) to each of several processes on one study.
    """
    import optuna

    # seed None: each process draws its own, so workers started together explore differently.
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 30)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = _retry(
        lambda: optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            pruner=pruner,
            sampler=sampler,
            load_if_exists=True,
        ),
        f"study {name}",
    )
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"study {name!r} exists with direction {study.direction.name.lower()}, not {direction}"
        )
    return study


def finished_count(study: optuna.Study) -> int:
    """Complete + pruned trials of ``study``."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _is_surplus(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether the trials finished, or running with a lower number, already make ``n_trials``."""
    from optuna.trial import TrialState

    ahead = 0
    for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ):
        if t.state != TrialState.RUNNING or t.number < number:
            ahead += 1
    return ahead >= n_trials


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
    max_failures: int = 3,
) -> dict[str, int]:
    """Run trials of ``objective`` until the study holds ``n_trials`` finished ones (or ``timeout`` s).

    Safe to call from several processes on one storage. A trial raising an error is recorded as
    FAIL and the loop goes on, stopping after ``max_failures`` failures in a row. Returns this
    call's counts ``{"complete", "pruned", "fail"}``.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "fail": 0}
    last: dict[str, Any] = {}

    def guarded(trial: optuna.Trial) -> float:
        last.clear()
        if _is_surplus(study, trial.number, n_trials):
            trial.set_user_attr("surplus", True)
            last["outcome"] = "surplus"
            raise SurplusTrial(f"trial {trial.number}: study already has {n_trials} trials")
        last["outcome"] = "fail"
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            last["outcome"] = "pruned"
            raise
        except Exception as exc:
            last["error"] = f"{type(exc).__name__}: {exc}"
            raise
        last["outcome"] = "complete"
        return value

    stop = MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    start, failures_in_row = time.monotonic(), 0
    while failures_in_row < max_failures:
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished_count(study) + running >= n_trials:
            break
        if timeout is not None and time.monotonic() - start >= timeout:
            log(f"timeout after {time.monotonic() - start:.0f} s")
            break
        study.optimize(guarded, n_trials=1, callbacks=[stop], catch=(Exception,), gc_after_trial=False)
        outcome = last.get("outcome", "fail")
        if outcome == "surplus":
            break
        counts[outcome] += 1
        failures_in_row = failures_in_row + 1 if outcome == "fail" else 0
        if outcome == "fail":
            log(f"trial failed: {last.get('error', '?')}")
    if failures_in_row >= max_failures:
        log(f"stopped after {max_failures} failed trials in a row")
    return counts
