"""Kill timing for resume tests: run a training that stops dead at a chosen epoch, so a test can
``kill -9`` it at a known point instead of racing it.

The stall is the ``epoch_callback`` of :func:`medxfer.training.runner.train_run`: it runs after the
epoch's validation and *before* that epoch's checkpoint is written (Lightning saves checkpoints
last), so stalling at epoch ``E`` (0-based) leaves ``last.ckpt`` of epoch ``E - 1`` (none for 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DRIVER = """
import pathlib, sys, time
from medxfer.config import load_config
from medxfer.training.runner import train_run
cfg_file, out, stall_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
def hook(epoch, metrics):
    if epoch == stall_at:
        pathlib.Path(out + ".stalled").write_text(str(epoch))
        time.sleep(3600)
train_run(load_config(cfg_file), out, epoch_callback=hook, progress=False)
"""


def cli(*args: str) -> list[str]:
    """``medxfer ARGS`` as a command line for this interpreter."""
    return [sys.executable, "-c", "from medxfer.cli import app; app()", *args]


def run_and_kill(cfg_file: Path, out: Path, stall_at: int, env: dict[str, str], timeout: float = 600) -> None:
    """Train ``cfg_file`` into ``out`` in a subprocess, wait until it stalls at epoch ``stall_at``
    (0-based), then SIGKILL it."""
    marker = Path(f"{out}.stalled")
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cfg_file), str(out), str(stall_at)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before epoch {stall_at}:\n{proc.stdout.read()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"training did not reach epoch {stall_at} in {timeout}s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def run_to_end(cfg_file: Path, out: Path, env: dict[str, str]) -> None:
    """The same training as :func:`run_and_kill`, left to finish (the uninterrupted reference)."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(cfg_file), str(out), "-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def resume(out: Path, env: dict[str, str]) -> str:
    """``medxfer train --resume OUT --quiet``; returns its stdout (fails on a non-zero exit)."""
    proc = subprocess.run(
        cli("train", "--resume", str(out), "--quiet"), env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout
