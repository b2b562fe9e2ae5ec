"""Hyperparameter search: space, exact trial counts across processes, resume, pruning, outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from medxfer.config import ConfigError, TrainConfig, load_config
from medxfer.features.extract import FeatureSet, save_features
from medxfer.tuning.objectives import FastObjective, FullObjective
from medxfer.tuning.search import TuneOptions, run_tune
from medxfer.tuning.space import Dimension, apply_params, load_space, params_to_overrides
from medxfer.tuning.study import _is_surplus, make_pruner, make_storage, open_study, run_trials

TINY_SPACE = {
    "fast": {
        "stages.0.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
        "model.head.hidden": {"type": "categorical", "choices": [0, 8]},
        "stages.0.epochs": {"type": "int", "low": 1, "high": 3},
    }
}


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def synth_features(n=120, d=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :2] += 1.5 * y[:, None]
    cols = {
        "path": np.array([f"/x/{i}.png" for i in range(n)]),
        "label_name": np.array(["a", "b"])[y],
        "patient_id": np.array([f"p{i}" for i in range(n)]),
        "split": np.where(np.arange(n) % 4 == 0, "val", "train"),
        "source": np.full(n, "s"),
    }
    return FeatureSet(x, y, ["a", "b"], cols, {"backbone": "synthetic"})


# Runs `medxfer ARGS` after the heavy imports, once the file argv[2] exists (it touches argv[1] first).
BARRIER = """
import pathlib, sys, time
import optuna, sklearn, torch
from medxfer.cli import app
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
sys.argv = ["medxfer", *sys.argv[3:]]
app()
"""


def _files(tmp_path: Path, n: int = 120) -> tuple[Path, Path]:
    feats, space = tmp_path / "f.npz", tmp_path / "space.yaml"
    save_features(synth_features(n=n), feats)
    space.write_text(yaml.safe_dump(TINY_SPACE))
    return feats, space


def _finished(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_default_space_loads_both_modes():
    full = {d.key for d in load_space(None, "full")}
    assert {
        "stages.0.lr",
        "stages.1.lr",
        "train.weight_decay",
        "train.batch_size",
        "model.head.dropout",
    } <= full
    assert {"model.head.hidden", "train.augment", "stages.1.trainable", "stages.0.epochs"} <= full
    fast = {d.key for d in load_space(None, "fast")}
    assert fast == {
        "stages.0.lr",
        "train.weight_decay",
        "model.head.dropout",
        "model.head.hidden",
        "stages.0.epochs",
        "train.label_smoothing",
    }
    lr = next(d for d in load_space(None, "fast") if d.key == "stages.0.lr")
    assert lr.log and lr.low == pytest.approx(1e-4)  # YAML 1.1 "1.0e-4" read as a number


def test_space_errors_name_the_key(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("fast:\n  stages.0.lr: {type: float, low: 1, high: 0.1}\n")
    with pytest.raises(ValueError, match="stages.0.lr"):
        load_space(bad, "fast")
    bad.write_text("x.y: {type: gaussian}\n")
    with pytest.raises(ValueError, match="categorical"):
        load_space(bad, "full")
    bad.write_text(yaml.safe_dump(TINY_SPACE))
    with pytest.raises(ValueError, match="no `full` section"):
        load_space(bad, "full")


def test_apply_params_sets_keys_and_head_kind():
    cfg = apply_params(
        TrainConfig(), {"stages.1.trainable": "last:2", "model.head.hidden": 64, "train.augment": "none"}
    )
    assert cfg.stages[1].trainable == "last:2" and cfg.model.head["kind"] == "mlp"
    assert cfg.model.head["hidden"] == 64 and cfg.train.augment == "none"
    assert apply_params(TrainConfig(), {"model.head.hidden": 0}).model.head["kind"] == "linear"
    assert params_to_overrides({"stages.0.lr": 0.001}) == ["stages.0.lr=0.001"]
    with pytest.raises(ConfigError, match="stages.7.lr"):
        apply_params(TrainConfig(), {"stages.7.lr": 0.1})


def test_surplus_rule_counts_finished_and_earlier_running():
    study = optuna.create_study()
    for _ in range(2):
        t = study.ask()
        study.tell(t, 1.0)
    a, b = study.ask(), study.ask()  # two workers started trials 2 and 3
    assert not _is_surplus(study, a.number, 4) and not _is_surplus(study, b.number, 4)
    assert not _is_surplus(study, a.number, 3) and _is_surplus(study, b.number, 3)


def test_two_processes_end_with_exact_count_then_resume(tmp_path):
    feats, space = _files(tmp_path, n=4000)  # trials of ~0.1 s: one process cannot take all 9 at once
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    cmd = [
        sys.executable,
        "-m",
        "medxfer.cli",
        "tune",
        "--fast",
        "--features",
        str(feats),
        "--space",
        str(space),
    ]
    cmd += ["--storage", url, "--study", "s", "--trials", "9", "--out", str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BARRIER, str(tmp_path / f"ready{i}"), str(go), *cmd[3:], "--seed", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.time() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.02)
    go.touch()  # both processes have their imports done: they start asking for trials together
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ran = [re.search(r"ran (\d+) complete, (\d+) pruned", out) for out in outputs]
    assert all(ran), outputs
    per_process = [int(m.group(1)) + int(m.group(2)) for m in ran]
    assert sum(per_process) == 9  # none counted twice, none lost
    assert min(per_process) >= 1, per_process  # both processes really shared the study
    finished = _finished(url, "s")
    assert len(finished) == 9
    assert len({t.number for t in finished}) == 9
    study = optuna.load_study(study_name="s", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    for name in ("best_config.yaml", "trials.csv", "summary.json", "history.png"):
        assert (tmp_path / "out" / name).is_file(), name
    best = load_config(tmp_path / "out" / "best_config.yaml")
    assert best.stages[0].lr == pytest.approx(study.best_trial.params["stages.0.lr"])

    # Resume in-process: nothing to add at 9, then continue to 12.
    opts = TuneOptions(
        trials=9, storage=url, study="s", space=space, fast=True, features=feats, out=tmp_path / "o2"
    )
    summary = run_tune(opts, log=lambda s: None)
    assert summary["this_process"] == {"complete": 0, "pruned": 0, "fail": 0}
    assert len(_finished(url, "s")) == 9
    opts.trials = 12
    summary = run_tune(opts, log=lambda s: None)
    assert sum(summary["this_process"].values()) == 3
    assert summary["complete"] + summary["pruned"] == 12 == len(_finished(url, "s"))


def test_bad_config_is_pruned_before_its_last_epoch(tmp_path):
    """Good heads first; then a hopeless learning rate is stopped by the median pruner."""
    space = [
        Dimension("stages.0.lr", "categorical", choices=[3e-2, 1e-9]),
        Dimension("stages.0.epochs", "categorical", choices=[6]),
    ]
    cfg = TrainConfig()
    cfg.train.scheduler = "constant"
    objective = FastObjective(synth_features(), cfg, space)
    study = open_study(
        make_storage(f"sqlite:///{tmp_path / 'p.db'}"), "p", "maximize", make_pruner("median", 6)
    )
    for lr in (3e-2, 3e-2, 3e-2, 1e-9):
        study.enqueue_trial({"stages.0.lr": lr, "stages.0.epochs": 6})
    counts = run_trials(study, objective, 4, log=lambda s: None)
    assert counts == {"complete": 3, "pruned": 1, "fail": 0}
    good, bad = study.trials[:3], study.trials[3]
    assert all(t.user_attrs["epochs_run"] == 6 for t in good)
    assert bad.state == TrialState.PRUNED and bad.user_attrs["epochs_run"] < 6
    assert len(bad.intermediate_values) == bad.user_attrs["epochs_run"]


def test_full_objective_prunes_through_train_run_callback(tmp_path, monkeypatch):
    """train_run's epoch_callback raises TrialPruned; the trial stops at that epoch."""
    import medxfer.training.runner as runner

    epochs_seen = []

    def fake_train_run(cfg, out_dir, *, resume=False, overwrite=False, epoch_callback=None, progress=True):
        for epoch in range(cfg.total_epochs):
            epochs_seen.append(epoch)
            lr = cfg.stages[0].lr
            epoch_callback(epoch, {"val_auc": 0.9 if lr > 1e-3 else 0.5, "val_loss": 0.3})
        return runner.TrainResult(Path(out_dir), 0.9 if cfg.stages[0].lr > 1e-3 else 0.5, seconds=1.0)

    monkeypatch.setattr(runner, "train_run", fake_train_run)
    cfg = TrainConfig()
    cfg.stages[0].epochs, cfg.stages[1].epochs = 3, 3
    space = [Dimension("stages.0.lr", "categorical", choices=[1e-2, 1e-5])]
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", 6))
    for lr in (1e-2, 1e-2, 1e-2, 1e-5):
        study.enqueue_trial({"stages.0.lr": lr})
    run_trials(study, FullObjective(cfg, space, tmp_path), 4, log=lambda s: None)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert epochs_seen.count(5) == 3  # only the good trials reach the last epoch
    assert study.trials[3].user_attrs["epochs_run"] < 6
    assert study.trials[0].user_attrs["run_dir"] == str(tmp_path / "trials" / "0")


def _shapes_dataset(root: Path, per_class: int = 16, size: int = 32) -> Path:
    """root/{square,plain}/p<ID>_<n>.png: a bright square or none on noise, two images per patient."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("plain", "square"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size)).astype(np.uint8)
            if name == "square":
                x, y = rng.integers(4, size - 12, 2)
                img[y : y + 8, x : x + 8] = 230
            Image.fromarray(img).save(root / name / f"{name}{i // 2}_{i % 2}.png")
    return root


def _tiny_train_config(data: Path) -> TrainConfig:
    from medxfer.config import from_dict

    return from_dict(
        {
            "data": {"specs": [f"folder:{data}"], "val": 0.25, "seed": 0},
            "model": {"backbone": "custom_cnn", "weights": "none", "input_size": 32},
            "train": {"batch_size": 8, "augment": "none", "threads": 1},
            "stages": [
                {"name": "head", "epochs": 1, "trainable": "head", "lr": 1e-2},
                {"name": "ft", "epochs": 1, "trainable": "all", "lr": 3e-3},
            ],
        }
    )


def test_full_objective_trains_through_lightning_and_prunes_for_real(tmp_path, monkeypatch):
    """Real FullObjective trials (no fake train_run): one completes with the run's own metric and
    per-epoch reports; one is pruned from inside Lightning after its first epoch."""
    import csv
    import json

    monkeypatch.setenv("MEDXFER_CACHE", str(tmp_path / "cache"))
    cfg = _tiny_train_config(_shapes_dataset(tmp_path / "data"))
    space = [Dimension("stages.0.lr", "categorical", choices=[1e-2])]
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    counts = run_trials(study, FullObjective(cfg, space, tmp_path / "a"), 1, log=lambda s: None)
    assert counts == {"complete": 1, "pruned": 0, "fail": 0}
    trial = study.trials[0]
    run = Path(trial.user_attrs["run_dir"])
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [trial.intermediate_values[e] for e in range(2)] == pytest.approx(
        [float(r["val_auc"]) for r in rows]
    )
    assert trial.value == pytest.approx(json.loads((run / "train_summary.json").read_text())["best_metric"])
    assert trial.user_attrs["epochs_run"] == 2 and (run / "model.safetensors").is_file()

    never_good_enough = optuna.pruners.ThresholdPruner(lower=2.0)  # every AUC is below: prune at once
    study = optuna.create_study(direction="maximize", pruner=never_good_enough)
    counts = run_trials(study, FullObjective(cfg, space, tmp_path / "b"), 1, log=lambda s: None)
    assert counts == {"complete": 0, "pruned": 1, "fail": 0}
    pruned = study.trials[0]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["epochs_run"] == 1
    run = Path(pruned.user_attrs["run_dir"])
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 1 and not (run / "model.json").exists()
