"""Datasets, samplers and the Lightning data module of a training run.

Reproducibility across a kill and ``--resume``: the sampler's order depends only on (seed, epoch)
and each augmentation draw only on (seed, epoch, index) — the sampler hands the dataset
``index + epoch * N`` — so the resumed epochs see the same batches as an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from medxfer.data.transforms import augment_uint8, get_augment, normalise
from medxfer.runs import ModelInfo


class PreparedImages(Dataset):
    """Prepared uint8 images + labels; augments with a generator seeded by (seed, epoch, index)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, info: ModelInfo, augment=None, seed: int = 0):
        self.images, self.labels, self.info, self.seed = images, labels, info, seed
        self.augment = get_augment(augment)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, int]:
        epoch, i = divmod(int(key), len(self.images))
        img = self.images[i]
        if not self.augment.is_identity():
            rng = np.random.default_rng([self.seed, epoch, i])
            img = augment_uint8(img, self.augment, rng)
        return normalise(img, self.info), int(self.labels[i])


class EpochSampler(Sampler[int]):
    """Shuffled (or class-balanced) order fixed by (seed, epoch); yields ``index + epoch * N``."""

    def __init__(self, labels: np.ndarray, seed: int, balanced: bool = False, shuffle: bool = True):
        self.labels, self.seed, self.balanced, self.shuffle = labels, seed, balanced, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[int]:
        n = len(self.labels)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.balanced:
            counts = np.bincount(self.labels, minlength=self.labels.max() + 1).astype(np.float64)
            w = torch.as_tensor(1.0 / counts[self.labels], dtype=torch.float64)
            order = torch.multinomial(w, n, replacement=True, generator=g)
        elif self.shuffle:
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        offset = self.epoch * n
        return iter((order + offset).tolist())


def embed_all(
    model: torch.nn.Module, x: np.ndarray, info: ModelInfo, batch_size: int = 64, progress: bool = True
) -> torch.Tensor:
    """Pooled embeddings of prepared images with the backbone frozen in eval mode."""
    backbone = model.backbone
    was_training = backbone.training
    backbone.eval()
    out = []
    device = next(model.parameters()).device
    starts = range(0, len(x), batch_size)
    if progress and len(x) > 4 * batch_size:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="embed (frozen backbone)", unit="batch", leave=False)
    with torch.inference_mode():
        for start in starts:
            batch = torch.stack([normalise(img, info) for img in x[start : start + batch_size]]).to(device)
            out.append(model.embed(batch).float().cpu())
    backbone.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


class RunData(L.LightningDataModule):
    """Train/val loaders for the stage of the current epoch: images, or cached embeddings for
    head-only stages without augmentation (the frozen backbone then runs once, not every epoch)."""

    def __init__(
        self,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        info: ModelInfo,
        batch_size: int,
        seed: int,
        balanced: bool,
        num_workers: int,
        stage_mode: Callable[[int], tuple],
        progress: bool = True,
        resized: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        super().__init__()
        self.train_x, self.train_y = train
        self.val_x, self.val_y = val
        self.info, self.batch_size, self.seed = info, batch_size, seed
        self.balanced, self.num_workers = balanced, num_workers
        # epoch -> ("images" | "embeddings", augment, backbone version[, side: None = the model's])
        self.stage_mode = stage_mode
        self.progress = progress  # the embedding bar (off with --quiet, like Lightning's)
        self.resized = dict(resized or {})  # {side: (train images, val images)} for smaller stages
        self._emb: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.model: torch.nn.Module | None = None

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _mode(self) -> tuple[str, object, int, int]:
        """``(kind, augment, backbone version, side)`` of the current epoch; side resolved."""
        kind, augment, version, *size = self.stage_mode(self._epoch())
        return kind, augment, version, (size[0] if size and size[0] else self.info.input_size)

    def images(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(train images, val images)`` prepared at side ``size``."""
        if size == self.info.input_size:
            return self.train_x, self.val_x
        if size not in self.resized:
            raise ValueError(
                f"no images prepared at {size} px (have {sorted([self.info.input_size, *self.resized])})"
            )
        return self.resized[size]

    def _embeddings(self, version: int, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        key = (version, size or self.info.input_size)
        if key not in self._emb:
            train_x, val_x = self.images(key[1])
            self._emb = {
                key: (
                    embed_all(self.model, train_x, self.info, progress=self.progress),
                    embed_all(self.model, val_x, self.info, progress=self.progress),
                )
            }
        return self._emb[key]

    def _loader(self, dataset: Dataset, labels: np.ndarray, train: bool) -> DataLoader:
        sampler = EpochSampler(labels, self.seed, balanced=train and self.balanced, shuffle=train)
        sampler.set_epoch(self._epoch() if train else 0)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        mode, augment, version, size = self._mode()
        if mode == "embeddings":
            emb, _ = self._embeddings(version, size)
            return self._loader(_KeyedTensors(emb, torch.tensor(self.train_y)), self.train_y, True)
        ds = PreparedImages(self.images(size)[0], self.train_y, self.info, augment, self.seed)
        return self._loader(ds, self.train_y, True)

    def val_dataloader(self) -> DataLoader:
        mode, _, version, size = self._mode()
        if mode == "embeddings":
            _, emb = self._embeddings(version, size)
            return self._loader(_KeyedTensors(emb, torch.tensor(self.val_y)), self.val_y, False)
        return self._loader(PreparedImages(self.images(size)[1], self.val_y, self.info), self.val_y, False)


class _KeyedTensors(TensorDataset):
    """TensorDataset that accepts the sampler's ``index + epoch * N`` keys."""

    def __getitem__(self, key: int):  # noqa: ANN204
        return super().__getitem__(int(key) % len(self))
