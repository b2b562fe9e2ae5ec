"""``train.precision: auto`` and ``train.channels_last``: the numeric format and memory layout a run
trains in, chosen for the hardware it runs on.

``auto`` (or null) means ``16-mixed`` on a GPU and ``32-true`` on a CPU: the recipes' numbers were
measured in float32, and a CPU's bf16 speed depends on the machine. ``auto-bf16`` also uses
``bf16-mixed`` on a CPU whose instruction set has bfloat16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in
``/proc/cpuinfo``; without them PyTorch emulates bf16 and autocast slows training ~5x, so it falls back
to ``32-true``). An explicit value (one of :data:`medxfer.config_checks.PRECISIONS`) is passed to
Lightning as given.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_supports_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU has native bfloat16 arithmetic (x86 ``avx512_bf16`` / ``amx_bf16`` flags).

    PyTorch's own report (``torch.backends.cpu.get_cpu_capability()``) names the vector width
    (``AVX2``, ``AVX512``), not bf16 support, so the flags are read directly; a machine without a
    readable ``/proc/cpuinfo`` (macOS, Windows) is treated as without bf16.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_precision(
    precision: str | None, on_gpu: bool, bf16_cpu: bool | None = None, gpu: str = "16-mixed"
) -> str:
    """The Lightning precision for ``precision`` (``auto``/None resolved for the hardware; ``gpu`` is
    what they mean on a GPU: ``16-mixed`` for training, ``bf16-mixed`` for pretraining)."""
    if precision not in (None, "auto", "auto-bf16"):
        return str(precision)
    if on_gpu:
        return gpu
    if precision != "auto-bf16":
        return "32-true"
    return "bf16-mixed" if (cpu_supports_bf16() if bf16_cpu is None else bf16_cpu) else "32-true"
