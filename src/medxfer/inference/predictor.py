"""Predictions for users: one :class:`Predictor` shared by ``medxfer predict``, ``serve`` and ``bench``.

A predictor needs only a run folder (``model.json`` + weights): preprocessing, class names and the
binary decision threshold are read from :class:`medxfer.runs.ModelInfo`, never retyped.

Two engines: ``"torch"`` (the safetensors weights, Grad-CAM available) and ``"onnx"`` (onnxruntime on
``RUN/model.onnx``, written by ``medxfer export RUN --format onnx``).

Test-time augmentation (``tta=True``) averages the probabilities of the image and four small shifts
(±4 % of the input size, edges replicated). No horizontal flip: a mirrored chest X-ray is not a
plausible X-ray (heart side, laterality markers). ``tta=None`` (every default) means the run's own
choice, ``model.json`` ``tta`` (recipe key ``model.tta``): :func:`resolve_tta`.
"""

from __future__ import annotations

import copy
import io
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from medxfer.runs import ModelInfo

ENGINES = ("torch", "onnx")
ONNX_FILE = "model.onnx"
TTA_SHIFT = 0.04  # fraction of the input size


class PredictorError(RuntimeError):
    """A run folder or engine that cannot serve predictions; the message says what to do."""


def resolve_tta(tta: bool | None, info: ModelInfo) -> bool:
    """Whether predictions use test-time augmentation: ``tta`` when a call says, else ``model.json``'s."""
    return info.tta if tta is None else bool(tta)


class Predictor:
    """Load a run folder once, then predict batches of decoded images.

    Example::

        p = Predictor("runs/kermany")
        probs = p.predict_arrays([read_image("x.png")])   # (1, C)
        p.labels(probs)                                     # ["pneumonia"]
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        engine: str = "torch",
        device: str = "cpu",
        max_pixels: int | None = None,
    ) -> None:
        """``max_pixels``: the largest image decoded (default: ``pixel_cap`` of the model input)."""
        from medxfer.runs import read_model_info

        if engine not in ENGINES:
            raise PredictorError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
        self.run_dir = Path(run_dir)
        self.engine = engine
        self.device = device
        self.model: Any = None
        self._session: Any = None
        self._classical: Any = None
        self._cam_lock = threading.Lock()  # Grad-CAM hooks on one shared model: one at a time
        self._cam_model: Any = None
        if _is_classical_run(self.run_dir):
            self._load_classical()
        else:
            self.info: ModelInfo = read_model_info(self.run_dir)
            if engine == "torch":
                from medxfer.runs import load_model

                self.model, _ = load_model(self.run_dir, device=device)
            else:
                self._session = _onnx_session(self.run_dir / ONNX_FILE, self.run_dir)
        self.max_pixels = _pixel_limit(self.info.input_size, max_pixels)

    def read(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Decode one file for this model (``read_image`` with this model's pixel cap)."""
        from medxfer.data.images import read_image

        return read_image(path, max_pixels=self.max_pixels)

    def read_bytes(self, data: bytes, name: str) -> np.ndarray:
        """Decode one upload for this model (``read_image_bytes`` with this model's pixel cap)."""
        from medxfer.data.images import read_image_bytes

        return read_image_bytes(data, name, max_pixels=self.max_pixels)

    def _load_classical(self) -> None:
        """A ``medxfer classical`` folder: frozen network embedding -> the saved scikit-learn pipeline."""
        from medxfer.features.classical import load_classical
        from medxfer.features.extract import load_encoder, meta_info

        if self.engine != "torch":
            raise PredictorError(
                f"{self.run_dir}: a classical-classifier run predicts with --engine torch only"
            )
        pipe, cinfo = load_classical(self.run_dir)
        self._classical = (pipe, len(cinfo["class_names"]))
        self.info = meta_info(cinfo["feature_source"], cinfo["class_names"])
        self.model = load_encoder(cinfo["feature_source"]).to(self.device)

    @property
    def has_cam(self) -> bool:
        """Whether :meth:`cam` works (a torch run with its own head, not a classical classifier)."""
        return self.model is not None and self._classical is None

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def threshold(self) -> float | None:
        """The binary decision threshold on P(class_names[1]); None for more than two classes."""
        return float(self.info.threshold) if self.info.num_classes == 2 else None

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Mask, channels and resize one decoded image for this model (uint8, the model's input size)."""
        from medxfer.data.transforms import prepare

        return prepare(image, self.info)

    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        batch_size: int = 32,
        tta: bool | None = None,
        prepared: bool = False,
    ) -> np.ndarray:
        """Probabilities ``(N, C)`` (float64) for decoded images (``read_image`` convention), with the
        run's local calibration (``model.json`` temperature) applied.

        ``prepared=True``: the images already went through :meth:`prepare` (``predict_files`` prepares
        each one inside its per-file error handling).
        """
        from medxfer.evaluate.temperature import apply_temperature

        ready = list(images) if prepared else [self.prepare(img) for img in images]
        out = np.zeros((len(ready), self.info.num_classes), dtype=np.float64)
        for start in range(0, len(ready), max(1, batch_size)):
            chunk = ready[start : start + batch_size]
            views = _tta_views(self.info) if resolve_tta(tta, self.info) else [None]
            acc = np.zeros((len(chunk), self.info.num_classes), dtype=np.float64)
            for shift in views:
                acc += self._run(self._inputs(chunk, shift))
            out[start : start + len(chunk)] = acc / len(views)
        return apply_temperature(out, float(self.info.temperature))

    def predict_paths(
        self, paths: Sequence[str], batch_size: int = 32, tta: bool | None = None, progress: bool = False
    ) -> np.ndarray:
        """Probabilities ``(N, C)`` for image files, decoded ``batch_size`` at a time (``progress``: a bar).

        An unreadable file raises :class:`medxfer.data.images.ImageError` naming it (``evaluate`` wants
        every row; ``predict`` uses :func:`medxfer.inference.files.predict_files`, which records
        errors per row instead).
        """
        from tqdm.auto import tqdm

        from medxfer.data.images import read_image

        out = [np.zeros((0, self.info.num_classes), dtype=np.float64)]
        with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, len(paths), max(1, batch_size)):
                images = [read_image(p) for p in paths[start : start + batch_size]]
                out.append(self.predict_arrays(images, batch_size=batch_size, tta=tta))
                bar.update(len(images))
        return np.concatenate(out)

    def labels(self, probs: np.ndarray) -> list[str]:
        """Predicted class names: threshold on P(class 1) for binary models, arg-max otherwise."""
        probs = np.atleast_2d(probs)
        if self.threshold is not None:
            idx = (probs[:, 1] >= self.threshold).astype(int)
        else:
            idx = probs.argmax(axis=1)
        return [self.info.class_names[i] for i in idx]

    def cam(self, image: np.ndarray, target_class: int | None = None) -> np.ndarray:
        """Grad-CAM heat-map ``(S, S)`` in [0, 1] for one decoded image (torch engine only).

        ``target_class`` defaults to the predicted class.
        """
        import torch

        if not self.has_cam:
            raise PredictorError(
                "Grad-CAM needs a network's own head (a run of `medxfer train`, engine torch)"
            )
        x = self._inputs([self.prepare(image)], None)
        if target_class is None:
            target_class = self.info.class_names.index(self.labels(self._run(x))[0])
        with self._cam_lock:
            if self._cam_model is None:
                # Grad-CAM hooks its model; a private copy keeps concurrent plain predictions unaffected.
                self._cam_model = copy.deepcopy(self.model)
            with torch.enable_grad():
                return _gradcam(self._cam_model, x, target_class)

    def _inputs(self, prepared: Sequence[np.ndarray], shift: tuple[int, int] | None) -> torch.Tensor:
        import torch

        from medxfer.data.transforms import normalise

        tensors = []
        for arr in prepared:
            if shift is not None:
                arr = shift_image(arr, *shift)
            tensors.append(normalise(arr, self.info))
        return torch.stack(tensors)

    def _run(self, x: torch.Tensor) -> np.ndarray:
        import torch

        if self._session is not None:
            name = self._session.get_inputs()[0].name
            return np.asarray(self._session.run(None, {name: x.numpy().astype(np.float32)})[0], np.float64)
        with torch.inference_mode():
            if self._classical is not None:
                from medxfer.features.classical import full_proba

                pipe, n_classes = self._classical
                return full_proba(pipe, self.model.embed(x.to(self.device)).float().cpu().numpy(), n_classes)
            return self.model.predict_proba(x.to(self.device)).double().cpu().numpy()


def _pixel_limit(input_size: int, given: int | None) -> int:
    from medxfer.data.images import pixel_cap

    if given is None:
        return pixel_cap(input_size)
    if given < 1:
        raise PredictorError(f"max_pixels must be a positive number of pixels, got {given}")
    return int(given)


def _is_classical_run(run_dir: Path) -> bool:
    """A ``medxfer classical --out`` folder (classical.json, no model.json of its own)."""
    return (run_dir / "classical.json").is_file() and not (run_dir / "model.json").is_file()


def _tta_views(info: ModelInfo) -> list[tuple[int, int] | None]:
    d = max(1, int(round(TTA_SHIFT * info.input_size)))
    return [None, (d, 0), (-d, 0), (0, d), (0, -d)]


def shift_image(arr: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift an image by ``dx`` (right) and ``dy`` (down) pixels, replicating the edges; same shape.

    >>> shift_image(np.array([[1, 2, 3]], np.uint8), 1, 0).tolist()
    [[1, 1, 2]]
    """
    h, w = arr.shape[:2]
    pad = [(abs(dy), abs(dy)), (abs(dx), abs(dx))] + [(0, 0)] * (arr.ndim - 2)
    padded = np.pad(arr, pad, mode="edge")
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return padded[y0 : y0 + h, x0 : x0 + w]


def _onnx_session(path: Path, run_dir: Path) -> Any:
    if not path.is_file():
        raise PredictorError(
            f"{path}: no ONNX model in this run; run `medxfer export {run_dir} --format onnx` first"
        )
    from medxfer.io import require_extra

    require_extra("onnxruntime", "onnx", "--engine onnx")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _gradcam(model: Any, x: torch.Tensor, target_class: int) -> np.ndarray:
    """Grad-CAM of one preprocessed input via :func:`medxfer.evaluate.explain.grad_cam`."""
    from medxfer.evaluate.explain import grad_cam

    return np.asarray(grad_cam(model, x, target=target_class)[0], dtype=np.float32)


def overlay_png(image: np.ndarray, heatmap: np.ndarray, max_side: int = 512) -> bytes:
    """The heat-map (any size, [0, 1]) blended over the image downsized to ``max_side``; PNG bytes."""
    from PIL import Image

    from medxfer.evaluate.explain import overlay

    small = Image.fromarray(image)
    if max(small.size) > max_side:
        small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return png_bytes(overlay(np.asarray(small), heatmap))


def png_bytes(arr: np.ndarray, max_side: int | None = None) -> bytes:
    """Encode a uint8 array as PNG (optionally downsized so the longer side is at most ``max_side``)."""
    from PIL import Image

    img = Image.fromarray(arr)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
