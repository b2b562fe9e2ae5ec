"""``train.precision: auto`` picks the hardware's format, explicit values are Lightning's,
``train.channels_last`` converts batches, and a bf16-mixed run still learns real X-rays."""

from __future__ import annotations

import csv
import typing
from pathlib import Path

import pytest
import torch
from test_learning import AUC_FLOOR, HEAD, kermany_config

from medxfer.config import ConfigError, load_config
from medxfer.config_checks import PRECISIONS
from medxfer.models.precision import cpu_supports_bf16, resolve_precision
from medxfer.training.module import ClassifierModule
from medxfer.training.runner import train_run


def test_explicit_precisions_are_lightnings() -> None:
    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS

    lightning = set(typing.get_args(_PRECISION_INPUT_STR)) | set(typing.get_args(_PRECISION_INPUT_STR_ALIAS))
    assert set(PRECISIONS) - {"auto", "auto-bf16"} <= lightning
    assert {"32-true", "16-mixed", "bf16-mixed", "bf16-true"} <= set(PRECISIONS)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.precision=fp8"])
    assert "train.precision='fp8'; valid: auto, auto-bf16, 32-true" in str(err.value) and "\n" not in str(
        err.value
    )
    assert load_config(None, []).train.precision == "auto"


@pytest.mark.parametrize(
    ("flags", "bf16"),
    [
        ("fpu sse2 avx2 avx512f avx512bw", False),
        ("fpu avx2 avx512f avx512_bf16", True),
        ("fpu avx2 amx_tile amx_bf16", True),
    ],
)
def test_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, bf16: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    )
    assert cpu_supports_bf16(str(cpuinfo)) is bf16
    assert cpu_supports_bf16(str(tmp_path / "missing")) is False  # no /proc: no bf16, 32-true


def test_auto_resolves_for_the_hardware() -> None:
    assert resolve_precision("auto", on_gpu=True) == "16-mixed"
    assert resolve_precision(None, on_gpu=False, bf16_cpu=True) == "32-true"  # auto: fp32 on any CPU
    assert resolve_precision("auto-bf16", on_gpu=False, bf16_cpu=True) == "bf16-mixed"
    assert resolve_precision("auto-bf16", on_gpu=False, bf16_cpu=False) == "32-true"  # emulated: fall back
    assert resolve_precision("auto-bf16", on_gpu=True, bf16_cpu=False) == "16-mixed"
    assert resolve_precision("bf16-mixed", on_gpu=False, bf16_cpu=False) == "bf16-mixed"  # as asked
    assert resolve_precision("32-true", on_gpu=True) == "32-true"


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_converts_image_batches(tiny_data: Path, channels_last: bool) -> None:
    from tiny import tiny_config

    from medxfer.models.backbones import build_model

    cfg = tiny_config(tiny_data, channels_last=channels_last)
    module = ClassifierModule(build_model("custom_cnn", 2, weights="none"), cfg)
    seen = []
    first = next(m for m in module.model.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    module(torch.randn(2, 3, 32, 32))
    assert seen[0].is_contiguous(memory_format=torch.channels_last) is channels_last


def test_bf16_mixed_training_learns_real_xrays(kermany_small: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    dtypes = set()
    forward = ClassifierModule.forward

    def recording(self: ClassifierModule, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(ClassifierModule, "forward", recording)
    # the head stage of test_learning, run on images (not cached embeddings) so that every batch goes
    # through the backbone under bf16 autocast; emulated bf16 (no avx512_bf16) is ~5x slower than fp32
    cfg = kermany_config(kermany_small, [HEAD])
    cfg.train.precision, cfg.train.feature_cache = "bf16-mixed", False
    train_run(cfg, tmp_path / "run", progress=False)
    assert torch.bfloat16 in dtypes  # the run computed under bf16 autocast
    aucs = [float(r["val_auc"]) for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open())]
    # fp32 on this subset: 0.98 after the first epoch of this stage (test_learning); chance is 0.5
    assert len(aucs) == 2 and min(aucs) >= AUC_FLOOR, aucs
