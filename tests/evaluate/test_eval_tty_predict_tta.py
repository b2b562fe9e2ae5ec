"""``medxfer predict --tta`` on a terminal (the progress-bar path) gives evaluate's TTA probabilities.

An escaped bug dropped ``--tta`` on that path only: tests ran without a terminal. Here stderr is a real
pseudo-terminal, so the command takes the path a user's shell takes.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from medxfer.cli import app


def _predict_on_a_terminal(run: Path, folder: Path, out: Path, *flags: str) -> str:
    """``medxfer predict`` with stderr on a pseudo-terminal (drained by a thread); returns its stderr."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    cmd = [sys.executable, "-c", "from medxfer.cli import app; app()", "predict", str(run), str(folder)]
    proc = subprocess.run(
        [*cmd, "--out", str(out), "--batch-size", "4", *flags],
        stderr=slave,
        stdout=subprocess.PIPE,
        timeout=600,
    )
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    return text


def test_tty_predict_with_tta_equals_evaluate_with_tta(
    tiny_folder: Path, tiny_run: Path, tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app,
        ["evaluate", str(tiny_run), "--data", str(tiny_folder), "--tta", "--n-boot", "10", "--worst", "0"],
    )
    assert res.exit_code == 0, res.output
    evaluated = pd.read_csv(next((tiny_run / "eval").glob("external-*-tta/predictions.csv"))).set_index(
        "path"
    )
    err = _predict_on_a_terminal(tiny_run, tiny_folder, tmp_path / "tta.csv", "--tta")
    assert "20 of 20 images predicted" in err
    _predict_on_a_terminal(tiny_run, tiny_folder, tmp_path / "plain.csv")
    tta = pd.read_csv(tmp_path / "tta.csv").set_index("path").loc[evaluated.index]
    plain = pd.read_csv(tmp_path / "plain.csv").set_index("path").loc[evaluated.index]
    for name in ("normal", "pneumonia"):
        np.testing.assert_allclose(tta[f"prob_{name}"], evaluated[f"p_{name}"], atol=2e-6)
    assert np.abs(plain["prob_pneumonia"] - evaluated["p_pneumonia"]).max() > 1e-4  # TTA is visible
