"""A train is quiet by default and says where it is in stage terms (issue 22 item 4).

Old code: every train printed Lightning's litlogger tip, "GPU available ..." lines and library warnings
(also with progress=False), the bar read "Epoch 2" in stage 2 and the end line "max_epochs=3 reached".
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from medxfer.config import StageConfig
from medxfer.training.callbacks import stage_label
from medxfer.training.quiet import LIGHTNING_LOGGERS, quiet_fit


def test_stage_label_counts_epochs_within_stages() -> None:
    stages = [
        StageConfig(name="head", epochs=1, trainable="head", lr=1e-2),
        StageConfig(name="skipped", epochs=0, trainable="all", lr=1e-3),
        StageConfig(name="finetune", epochs=2, trainable="all", lr=1e-3),
    ]
    assert stage_label(stages, 0) == "stage 1/2 head, epoch 1/1"
    assert stage_label(stages, 1) == "stage 2/2 finetune, epoch 1/2"
    assert stage_label(stages, 2) == "stage 2/2 finetune, epoch 2/2"


def test_quiet_fit_silences_and_restores() -> None:
    import lightning.pytorch  # noqa: F401

    before = [logging.getLogger(n).level for n in LIGHTNING_LOGGERS]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_fit():
            warnings.warn("inside", DeprecationWarning, stacklevel=1)
            assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == logging.ERROR
        assert [logging.getLogger(n).level for n in LIGHTNING_LOGGERS] == before
        warnings.warn("after", UserWarning, stacklevel=1)
        with quiet_fit(verbose=True):
            warnings.warn("verbose", UserWarning, stacklevel=1)
            assert [logging.getLogger(n).level for n in LIGHTNING_LOGGERS] == before
    assert [str(w.message) for w in seen] == ["after", "verbose"]


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from tiny import make_folder_dataset, tiny_config
from pathlib import Path
import medxfer
root = Path({root!r})
cfg = tiny_config(make_folder_dataset(root / "data"))
medxfer.train(cfg, out=root / "run")
"""


def test_train_prints_no_third_party_noise_and_stage_labels(tmp_path: Path) -> None:
    tests = str(Path(__file__).parent)
    code = SCRIPT.format(tests=tests, root=str(tmp_path))
    env = {**os.environ, "MEDXFER_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    for noise in (
        "Tip:",
        "litlogger",
        "GPU available",
        "TPU available",
        "max_epochs",
        "site-packages",
        "Epoch 1",
    ):
        assert noise not in text, (noise, text[-3000:])
    assert "stage 1/2 head, epoch 1/1" in text
    assert "stage 2/2 ft, epoch 2/2" in text
    assert "training done: stage 2/2 ft, epoch 2/2 (3 epochs in all)" in text
