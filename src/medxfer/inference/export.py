"""Export a run's classifier to ONNX or TorchScript, and prove the export computes the same thing.

The exported graph takes the normalised input ``(B, 3, S, S)`` (batch size dynamic) and returns
probabilities ``(B, C)`` — the same as :meth:`Classifier.predict_proba`. Preprocessing stays in
``model.json`` (mean/std, size, channels), which travels with the file in the run folder.

Self-check: the exported model and PyTorch are run on the same inputs (real images when given, plus
synthetic ones) at two batch sizes; if any probability differs by more than ``tolerance`` (1e-4)
the export fails with :class:`ExportError` and no file is left behind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medxfer.io import atomic_path, require_extra

if TYPE_CHECKING:
    import torch

FORMATS = {"onnx": "model.onnx", "torchscript": "model.ts"}
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that failed or did not reproduce PyTorch's outputs."""


@dataclass
class ExportResult:
    """Where the export went and how close it came to PyTorch."""

    path: Path
    format: str
    max_abs_diff: float
    n_checked: int
    batch_sizes: tuple[int, ...]


def default_output(run_dir: str | os.PathLike[str], fmt: str) -> Path:
    """``RUN/model.onnx`` or ``RUN/model.ts``."""
    _check_format(fmt)
    return Path(run_dir) / FORMATS[fmt]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")


def _proba_module(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class Proba(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.predict_proba(x)

    return Proba(model).eval()


def export_run(
    run_dir: str | os.PathLike[str],
    fmt: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    check_images: Sequence[np.ndarray] = (),
    force: bool = False,
    tolerance: float = TOLERANCE,
    progress: bool = False,
) -> ExportResult:
    """Export the run's model to ``fmt`` and verify it against PyTorch; returns an :class:`ExportResult`.

    ``check_images`` are decoded images (``read_image`` convention) used for the self-check in
    addition to synthetic inputs. Refuses to replace an existing ``out`` unless ``force``. ``progress``:
    a bar over the steps (load, export, self-check).

    Example::

        export_run("runs/kermany", "onnx", check_images=[read_image("x.jpeg")])
    """
    import torch
    from tqdm.auto import tqdm

    from medxfer.data.transforms import batch_input
    from medxfer.runs import load_model

    _check_format(fmt)
    if fmt == "onnx":
        for module in ("onnx", "onnxscript", "onnxruntime"):
            require_extra(module, "onnx", "export --format onnx")
    target = Path(out) if out is not None else default_output(run_dir, fmt)
    if target.exists() and not force:
        raise ExportError(f"{target}: already exists; pass --force to replace it (or --out elsewhere)")
    bar = tqdm(total=3, desc=f"export {fmt}: load", unit="step", disable=not progress, leave=False)
    model, info = load_model(run_dir)
    x = _check_inputs(check_images, info, batch_input)
    bar.update()
    bar.set_description(f"export {fmt}: write")
    with atomic_path(target) as tmp, torch.no_grad():  # no half-written file when the self-check fails
        if fmt == "onnx":
            _export_onnx(_proba_module(model), x[:2], tmp)
        else:
            _export_torchscript(_proba_module(model), x[:2], tmp)
        bar.update()
        bar.set_description(f"export {fmt}: self-check")
        diff, sizes = _self_check(model, tmp, fmt, x, tolerance)
    bar.update()
    bar.close()
    return ExportResult(target, fmt, diff, int(x.shape[0]), sizes)


def _check_inputs(check_images: Sequence[np.ndarray], info: Any, batch_input: Any) -> torch.Tensor:
    """Real images (if any) plus a few synthetic ones: noise, a gradient and a flat image."""
    rng = np.random.default_rng(0)
    s = max(32, int(info.input_size))
    yy, xx = np.mgrid[0:s, 0:s]
    synthetic = [
        rng.integers(0, 256, (s, s), dtype=np.uint8),
        ((xx + yy) * 255 // (2 * s - 2)).astype(np.uint8),
        np.full((s, s), 128, np.uint8),
    ]
    return batch_input(list(check_images) + synthetic, info)


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """torch.export-based exporter with a dynamic batch; the legacy exporter if that fails."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
                report=False,
            )
            return
        except Exception as exc:  # noqa: BLE001 - fall back to the TorchScript-based exporter
            first = exc
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                opset_version=17,
            )
        except Exception as exc:
            raise ExportError(f"ONNX export failed: {first}; legacy exporter: {exc}") from exc


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _self_check(
    model: torch.nn.Module, path: Path, fmt: str, x: torch.Tensor, tolerance: float
) -> tuple[float, tuple[int, ...]]:
    """Max |exported - torch| over the check inputs, run once as one batch and once one by one."""
    import torch

    with torch.inference_mode():
        ref = model.predict_proba(x).double().numpy()
    run = _onnx_runner(path) if fmt == "onnx" else _torchscript_runner(path)
    full = run(x)
    single = np.concatenate([run(x[i : i + 1]) for i in range(x.shape[0])])
    if full.shape != ref.shape or single.shape != ref.shape:
        raise ExportError(f"exported model returns shape {full.shape}, PyTorch {ref.shape}")
    diff = float(max(np.abs(full - ref).max(), np.abs(single - ref).max()))
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(
            f"exported {fmt} model disagrees with PyTorch: max |difference| = {diff:.3g} > {tolerance:g} "
            f"on {x.shape[0]} check images; the file was not written"
        )
    return diff, (int(x.shape[0]), 1)


def _onnx_runner(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: np.asarray(sess.run(None, {name: x.numpy().astype(np.float32)})[0], np.float64)


def _torchscript_runner(path: Path) -> Any:
    import torch

    loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return loaded(x).double().numpy()

    return run
