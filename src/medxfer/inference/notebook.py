"""What a notebook wants from a run folder besides predictions: its training history as a DataFrame and
a look at a batch of augmented training inputs. :class:`medxfer.api.Run` inherits these.

``show_batch`` goes through the one augmentation path (:func:`medxfer.data.transforms.prepare` then
:func:`~medxfer.data.transforms.augment_uint8`, seeded as the training data is), so what it shows is
what the network was fed, before mean/std normalisation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from medxfer.runs import ModelInfo


def read_history(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """``RUN/metrics.csv`` (one row per epoch: epoch, stage, train/val loss, accuracy, AUC, F1)."""
    import pandas as pd

    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training history (a run from `medxfer train` writes it)")
    return pd.read_csv(path)


def stage_augment(run_dir: str | os.PathLike[str], stage: int | None) -> tuple[Any, str]:
    """The augmentation of ``stage`` (None: the last one) of ``RUN/config.yaml`` and the stage's name."""
    from medxfer.config import load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; show_batch needs the run's config")
    cfg = load_config(path)
    k = len(cfg.stages) - 1 if stage is None else stage
    if not 0 <= k < len(cfg.stages):
        raise ValueError(f"stage {stage}: the run has stages 0..{len(cfg.stages) - 1}")
    chosen = cfg.stages[k]
    return (chosen.augment if chosen.augment is not None else cfg.train.augment), chosen.name


def augmented_batch(
    run_dir: str | os.PathLike[str], info: ModelInfo, n: int = 16, stage: int | None = None, seed: int = 0
) -> tuple[list[np.ndarray], list[str], str]:
    """``n`` training images of the run (RUN/splits.csv), prepared and augmented as ``stage`` trains
    on them; returns (uint8 images, their class names, a title)."""
    import pandas as pd

    from medxfer.data.images import read_image
    from medxfer.data.transforms import augment_uint8, get_augment, prepare

    splits = Path(run_dir) / "splits.csv"
    if not splits.is_file():
        raise FileNotFoundError(f"{splits}: not found; show_batch shows the run's training images")
    rows = pd.read_csv(splits, dtype=str, keep_default_na=False)
    rows = rows[rows["split"] == "train"]
    if rows.empty:
        raise ValueError(f"{splits}: no train rows")
    rng = np.random.default_rng(seed)
    picked = rows.iloc[np.sort(rng.choice(len(rows), size=min(n, len(rows)), replace=False))]
    augment, name = stage_augment(run_dir, stage)
    aug = get_augment(augment)
    images = []
    for i, path in enumerate(picked["path"]):
        img = prepare(read_image(path), info)
        images.append(
            img if aug.is_identity() else augment_uint8(img, aug, np.random.default_rng([seed, 0, i]))
        )
    labels = list(picked["label_name"]) if "label_name" in picked else [""] * len(images)
    return images, labels, f"stage {name!r}: augment {augment!r}, {info.input_size} px"


def grid_figure(images: list[np.ndarray], titles: list[str], title: str = "") -> Figure:
    """Images in a square-ish grid, each with its title (no pyplot: safe in scripts and notebooks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, int(np.ceil(np.sqrt(len(images)))))
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig = Figure(figsize=(2.2 * cols, 2.3 * rows + 0.4), dpi=90)
    FigureCanvasAgg(fig)
    for k, (img, text) in enumerate(zip(images, titles, strict=True)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(text, fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


class RunNotebook:
    """Notebook helpers of a run folder (mixed into :class:`medxfer.api.Run`, which sets ``path``)."""

    path: Path
    info: ModelInfo

    @property
    def history(self) -> pd.DataFrame:
        """The training history, one row per epoch (``RUN/metrics.csv``).

        Example: ``run.history.plot(x="epoch", y=["train_loss", "val_loss"])``
        """
        return read_history(self.path)

    def show_batch(self, n: int = 16, stage: int | None = None, seed: int = 0) -> Figure:
        """A Figure of ``n`` training images as ``stage`` (default: the last) augments them, with classes.

        Example: ``run.show_batch(n=9)``
        """
        images, labels, title = augmented_batch(self.path, self.info, n, stage, seed)
        return grid_figure(images, labels, title)
