"""Frozen-network embeddings of every image, saved with the dataset table, cached by content.

A :class:`FeatureSet` is the row-aligned pair of an embedding matrix ``(N, D)`` float32 and the
dataset columns (path, label, label_name, patient_id, split, source) plus ``meta``: where the
features come from (backbone, weights source, input size, mean/std, channels, mask). It is saved as
one ``.npz`` without pickled objects (strings as unicode arrays, meta as JSON).

Extraction caches each image's embedding under ``$MEDXFER_CACHE/features`` (default
``~/.cache/medxfer/features``), keyed by the SHA-1 of the file's bytes and the model identity, so a
second call on the same images and model only hashes the files.

Example::

    fs = extract_features(load_datasets(["kermany:data/kermany"]), backbone="efficientnet_lite0")
    save_features(fs, "runs/feats.npz")
    fs = load_features("runs/feats.npz")
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from medxfer.data.datasets import ImageTable
    from medxfer.runs import ModelInfo

COLUMNS = ("path", "label_name", "patient_id", "split", "source")
FEATURE_VERSION = "v1"


@dataclass
class FeatureSet:
    """Embeddings and the row-aligned dataset columns of one extraction."""

    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64 index into class_names
    class_names: list[str]
    columns: dict[str, np.ndarray]  # COLUMNS -> (N,) str arrays
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def splits(self) -> np.ndarray:
        return self.columns["split"]

    @property
    def groups(self) -> np.ndarray:
        return self.columns["patient_id"]

    def subset(self, mask: np.ndarray) -> FeatureSet:
        """Rows where boolean ``mask`` is true."""
        return FeatureSet(
            self.features[mask],
            self.labels[mask],
            list(self.class_names),
            {k: v[mask] for k, v in self.columns.items()},
            dict(self.meta),
        )


def save_features(fs: FeatureSet, path: str | os.PathLike[str]) -> None:
    """Write ``fs`` as one ``.npz`` atomically (no pickle: loads with ``allow_pickle=False``)."""
    from medxfer.io import atomic_write_bytes

    buf = io.BytesIO()
    arrays = {f"col_{k}": np.asarray(v, dtype=str) for k, v in fs.columns.items()}
    np.savez(
        buf,
        features=np.asarray(fs.features, np.float32),
        label=np.asarray(fs.labels, np.int64),
        class_names=np.asarray(fs.class_names, dtype=str),
        meta=np.asarray(json.dumps(fs.meta, sort_keys=True)),
        **arrays,
    )
    atomic_write_bytes(path, buf.getvalue())


def load_features(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a file written by :func:`save_features`; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: features file not found; make one with `medxfer features`")
    try:
        with np.load(p, allow_pickle=False) as z:
            columns = {k[4:]: z[k].astype(str) for k in z.files if k.startswith("col_")}
            fs = FeatureSet(
                features=z["features"].astype(np.float32),
                labels=z["label"].astype(np.int64),
                class_names=[str(c) for c in z["class_names"]],
                columns=columns,
                meta=json.loads(str(z["meta"])),
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{p}: not a medxfer features file ({exc})") from exc
    missing = [c for c in COLUMNS if c not in fs.columns]
    if missing:
        raise ValueError(f"{p}: features file lacks column(s) {missing}")
    return fs


def feature_cache_dir() -> Path:
    """``$MEDXFER_CACHE/features`` or ``~/.cache/medxfer/features``."""
    root = os.environ.get("MEDXFER_CACHE") or Path.home() / ".cache" / "medxfer"
    return Path(root) / "features"


def file_digest(path: str) -> str:
    """SHA-1 of a file's bytes (the cache key of its embedding)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def model_key(meta: dict[str, Any]) -> str:
    """Hash of everything that changes an embedding: backbone, weights, preprocessing."""
    keys = ("backbone", "weights", "weights_digest", "input_size", "mean", "std", "channels", "mask_boxes")
    ident = {k: meta.get(k) for k in keys}
    if meta.get("preprocess", "none") != "none":  # keys of features without it stay as they were
        ident["preprocess"] = meta["preprocess"]
    ident["version"] = FEATURE_VERSION
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


class _Store:
    """Embeddings of one model identity: shards of (digest, feature) rows, appended, never rewritten."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.dir = (root or feature_cache_dir()) / key
        self.rows: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("*.npz")) if self.dir.is_dir() else []:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    self.rows.update(zip(z["digest"].astype(str), z["features"], strict=True))
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard only costs a recomputation

    def add(self, digests: Sequence[str], feats: np.ndarray) -> None:
        from medxfer.io import atomic_write_bytes

        if not len(digests):
            return
        buf = io.BytesIO()
        np.savez(buf, digest=np.asarray(digests, dtype=str), features=feats.astype(np.float32))
        name = f"{time.time_ns()}-{os.getpid()}.npz"
        atomic_write_bytes(self.dir / name, buf.getvalue())
        self.rows.update(zip(digests, feats, strict=True))


def _weights_digest(weights: str) -> str:
    """Content identity of ``file:PATH`` weights (a file, or a pretraining folder's weights.safetensors)."""
    if weights.startswith("file:"):
        p = Path(weights[5:])
        p = p / "weights.safetensors" if p.is_dir() else p
        return file_digest(str(p)) if p.is_file() else ""
    return ""


def backbone_meta(
    backbone: str,
    weights: str = "packaged",
    input_size: int | None = None,
    channels: str = "gray",
    mask_boxes: Sequence[Sequence[float]] = (),
) -> dict[str, Any]:
    """The feature source of ``backbone`` + ``weights``: preprocessing from the weights' spec."""
    from medxfer.runs import ModelInfo

    boxes = [list(map(float, b)) for b in mask_boxes]
    # no classes: a preprocessing record of the frozen network
    info = ModelInfo.for_backbone(backbone, weights, [], input_size, channels=channels, mask_boxes=boxes)
    return info_meta(info, _weights_digest(weights))


def run_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The feature source of a trained run folder (its fine-tuned network and preprocessing)."""
    from medxfer.runs import MODEL_WEIGHTS, read_model_info

    info = read_model_info(run_dir)
    if info.network is None:
        raise ValueError(
            f"{run_dir}: an ensemble run has no single embedding (its members' features differ); "
            "extract features with one member's run folder"
        )
    info.network.weights = f"run:{Path(run_dir).resolve()}"
    return info_meta(info, file_digest(str(Path(run_dir) / MODEL_WEIGHTS)))


def info_meta(info: ModelInfo, weights_digest: str) -> dict[str, Any]:
    """The preprocessing fields of ``info`` (one network) as the JSON ``meta`` saved with features
    (inverse: meta_info)."""
    network = info.networks[0]
    return {
        "backbone": network.backbone,
        "weights": network.weights,
        "weights_digest": weights_digest,
        "input_size": int(info.input_size),
        "mean": [float(m) for m in info.mean],
        "std": [float(s) for s in info.std],
        "channels": info.channels,
        "mask_boxes": [list(map(float, b)) for b in info.mask_boxes],
        "preprocess": info.preprocess,
    }


def load_encoder(meta: dict[str, Any]) -> torch.nn.Module:
    """The frozen network (eval mode) that ``meta`` describes."""
    weights = str(meta["weights"])
    if weights.startswith("run:"):
        from medxfer.runs import load_model

        return load_model(weights[4:])[0].eval()
    from medxfer.models.backbones import build_model

    return build_model(meta["backbone"], num_classes=2, weights=weights).eval()


def meta_info(meta: dict[str, Any], class_names: list[str]) -> ModelInfo:
    """A :class:`ModelInfo` carrying the preprocessing of ``meta`` (for transforms)."""
    from medxfer.runs import ModelInfo, NetworkSpec

    return ModelInfo(
        class_names=list(class_names),
        network=NetworkSpec(backbone=meta["backbone"], weights=meta["weights"]),
        input_size=int(meta["input_size"]),
        mean=tuple(meta["mean"]),  # type: ignore[arg-type]
        std=tuple(meta["std"]),  # type: ignore[arg-type]
        channels=meta["channels"],
        mask_boxes=meta["mask_boxes"],
        preprocess=meta.get("preprocess", "none"),
    )


def embed_paths(
    model: torch.nn.Module,
    paths: Sequence[str],
    meta: dict[str, Any],
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings ``(N, D)`` of the images at ``paths`` (decoded through the image cache)."""
    import torch

    from medxfer.data.cache import load_prepared
    from medxfer.data.transforms import normalise

    info = meta_info(meta, [])

    out: list[np.ndarray] = []
    bar = None
    if progress and len(paths) > batch_size:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="features", unit="img")
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            arr = load_prepared(
                chunk,
                info.input_size,
                info.channels,
                info.mask_boxes,
                progress=False,
                preprocess=info.preprocess,
            )
            emb = model.embed(torch.stack([normalise(a, info) for a in arr]))
            out.append(emb.float().cpu().numpy().reshape(len(chunk), -1))
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def extract_features(
    table: ImageTable,
    meta: dict[str, Any],
    model: torch.nn.Module | None = None,
    batch_size: int = 64,
    use_cache: bool = True,
    progress: bool = True,
) -> FeatureSet:
    """Embed every row of ``table`` with the network of ``meta`` (:func:`backbone_meta`/:func:`run_meta`).

    Rows already embedded by the same model identity (:func:`model_key`) come from the cache; the
    network is only built (or ``model`` used) when some rows are new.
    """
    df = table.table
    paths = [str(p) for p in df["path"]]
    digests = [file_digest(p) for p in paths]
    store = _Store(model_key(meta)) if use_cache else None
    todo = sorted({d: i for i, d in enumerate(digests) if store is None or d not in store.rows}.values())
    new = None
    if todo:
        model = model if model is not None else load_encoder(meta)
        new = embed_paths(model, [paths[i] for i in todo], meta, batch_size, progress)
    if store is not None and new is not None:
        store.add([digests[i] for i in todo], new)
    computed = dict(zip((digests[i] for i in todo), new, strict=True)) if new is not None else {}
    rows = [computed[d] if d in computed else store.rows[d] for d in digests]  # type: ignore[union-attr]
    feats = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    columns = {c: df[c].astype(str).to_numpy() for c in COLUMNS}
    meta = {**meta, "cached_rows": len(paths) - len(todo), "computed_rows": len(todo)}
    return FeatureSet(feats, df["label"].to_numpy(np.int64), list(table.class_names), columns, meta)
