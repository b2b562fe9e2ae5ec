"""A pretraining killed with SIGKILL after an epoch resumes (`medxfer pretrain --resume`) to exactly the
weights of an uninterrupted one. The kill lands at a known point: the epoch-end hook stalls before that
epoch's checkpoint is written (the pattern of tests/training/stall.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medxfer.io import shared_data_dir

KERMANY = shared_data_dir() / "kermany" / "train"
pytestmark = pytest.mark.skipif(not KERMANY.is_dir(), reason="needs ../shared/data/kermany")

DRIVER = """
import pathlib, sys, time
from medxfer.pretraining.card import PretrainSettings
from medxfer.pretraining.engine import pretrain_run
data, out, stall_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
def hook(epoch, metrics):
    if epoch == stall_at:
        pathlib.Path(out + ".stalled").write_text(str(epoch))
        time.sleep(3600)
settings = PretrainSettings(data=[data], backbone="custom_cnn", weights="none", method="byol", epochs=3,
                            input_size=32, batch_size=16, max_images=32, threads=1)
pretrain_run(out, settings, progress=False, epoch_callback=hook)
"""


def _driver(out: Path, stall_at: int, env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-c", DRIVER, f"folder:{KERMANY}", str(out), str(stall_at)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when_stalled(proc: subprocess.Popen, marker: Path, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"pretraining ended before the stall:\n{proc.stdout.read()[-3000:]}")
        assert time.time() < deadline, "pretraining did not reach the stall"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_killed_pretraining_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    env = {**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache")}
    full, killed = tmp_path / "full", tmp_path / "killed"
    proc = _driver(full, -1, env)
    assert proc.wait(timeout=900) == 0, proc.stdout.read()[-3000:]
    _kill_when_stalled(_driver(killed, 1, env), Path(f"{killed}.stalled"))
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(ckpt["epoch"]) + 1 == 1  # killed in epoch 2, before its checkpoint
    assert not (killed / "card.json").exists()
    cli = [sys.executable, "-c", "from medxfer.cli import app; app()"]
    done = subprocess.run(
        [*cli, "pretrain", "--resume", "--out", str(killed), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"--weights file:{killed}" in done.stdout
    note = f"resumed from {killed / 'checkpoints' / 'last.ckpt'}: 1 epoch(s) done; continuing at epoch 2/3"
    assert note in done.stdout
    a, b = load_file(str(full / "weights.safetensors")), load_file(str(killed / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    card_a, card_b = (json.loads((p / "card.json").read_text()) for p in (full, killed))
    for key in ("images", "images_sha256", "epochs", "final_loss"):
        assert card_a[key] == card_b[key], key


def test_a_second_pretraining_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    from medxfer.pretraining.card import PretrainSettings
    from medxfer.pretraining.engine import start_settings
    from medxfer.pretraining.images import PretrainError

    settings = PretrainSettings(data=[f"folder:{KERMANY}"])
    start_settings(tmp_path / "pre", settings, resume=False)
    with pytest.raises(PretrainError, match="holds a pretraining already; use --resume"):
        start_settings(tmp_path / "pre", settings, resume=False)
