"""Issue 23: ``train --resume`` loads its checkpoint with ``weights_only=True``: a checkpoint holding code
never runs it, and a garbled one is one clear line, not a traceback."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch
from tiny import make_folder_dataset, tiny_config

from medxfer.training.fit import CheckpointError, check_checkpoint, fit


class _Payload:
    """Unpickling this calls ``Path(marker).touch()``: code a checkpoint must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _run_with_checkpoint(tmp_path: Path, content: object | bytes) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.ckpt"
    if isinstance(content, bytes):
        last.write_bytes(content)
    else:
        torch.save(content, last)
    return run


def test_malicious_checkpoint_is_refused_without_running_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run = _run_with_checkpoint(tmp_path, {"state_dict": {}, "epoch": _Payload(marker)})
    cfg = tiny_config(make_folder_dataset(tmp_path / "data", per_class=2, size=32))
    with pytest.raises(CheckpointError) as info:
        fit(cfg, None, run, resume=True, progress=False)
    message = str(info.value)
    assert message.startswith(str(run / "checkpoints" / "last.ckpt")) and "\n" not in message
    assert "not a loadable training checkpoint" in message and len(message) < 600
    assert not marker.exists()


@pytest.mark.parametrize(
    "content", [b"\x80\x02garbage" * 10, b"", {"epoch": 3}], ids=["garbled", "empty", "no-state"]
)
def test_garbled_checkpoint_is_one_line(tmp_path: Path, content: object) -> None:
    run = _run_with_checkpoint(tmp_path, content)
    with pytest.raises(CheckpointError) as info:
        check_checkpoint(run / "checkpoints" / "last.ckpt")
    assert "\n" not in str(info.value) and "last.ckpt" in str(info.value)


def test_a_plain_lightning_checkpoint_passes(tmp_path: Path) -> None:
    run = _run_with_checkpoint(
        tmp_path, {"state_dict": {"w": torch.ones(2)}, "epoch": 1, "loops": {"a": [1]}}
    )
    check_checkpoint(run / "checkpoints" / "last.ckpt")
