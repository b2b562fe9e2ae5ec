"""Training end to end on a tiny folder dataset: outputs, refusal to clobber, kill + resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from tiny import make_folder_dataset, tiny_config

from medxfer.config import save_config
from medxfer.train.runner import RunExistsError, train_run


def test_train_writes_a_self_describing_run(tiny_data: Path, tmp_path: Path) -> None:
    result = train_run(tiny_config(tiny_data), tmp_path / "run", progress=False)
    run = result.run_dir
    for name in ("config.yaml", "splits.csv", "model.json", "model.safetensors", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert any((run / "tb").rglob("events.out.tfevents*"))
    info = json.loads((run / "model.json").read_text())
    assert info["class_names"] == ["bar", "disc"] and info["input_size"] == 32 and info["channels"] == "gray"
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,stage,train_loss,val_loss") and len(rows) == 1 + 3
    assert [r.split(",")[1] for r in rows[1:]] == ["head", "ft", "ft"]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["params"] > 0 and summary["images_per_second"] > 0
    with pytest.raises(RunExistsError, match="--resume"):
        train_run(tiny_config(tiny_data), run, progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from medxfer.cli import app; app()", *args]


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    data = make_folder_dataset(tmp_path / "data", per_class=120, size=48)
    cfg = tiny_config(data)
    cfg.stages[1].epochs = 5
    cfg_file = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_file)
    env = {**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli("train", "-c", str(cfg_file), "--out", str(full), "--quiet"), env=env, check=True)

    proc = subprocess.Popen(_cli("train", "-c", str(cfg_file), "--out", str(killed), "--quiet"), env=env)
    deadline = time.time() + 300
    while time.time() < deadline:
        metrics = killed / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.json").exists(), "the run finished before it could be killed"
    subprocess.run(_cli("train", "--resume", str(killed), "--quiet"), env=env, check=True)

    a, b = load_file(str(full / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key].float() - b[key].float()).abs().max() <= 1e-5, key
    assert (full / "metrics.csv").read_text() == (killed / "metrics.csv").read_text()


def test_ddp_two_processes_on_cpu(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_data, accelerator="cpu", devices=2, strategy="ddp")
    cfg_file = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_file)
    out = tmp_path / "ddp"
    # Lightning's DDP launcher re-runs the command line for rank 1: use the console script.
    medxfer = str(Path(sys.executable).with_name("medxfer"))
    proc = subprocess.run(
        [medxfer, "train", "-c", str(cfg_file), "--out", str(out)],  # not --quiet: Lightning's DDP lines
        capture_output=True,
        text=True,
        env={**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "distributed_backend=gloo" in log
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert (out / "model.safetensors").is_file()
    assert len(list(out.glob("model*.safetensors"))) == 1
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["devices"] == 2
