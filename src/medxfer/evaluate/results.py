"""What the public API hands back about an evaluation or an explanation, figures included.

Figures are matplotlib :class:`~matplotlib.figure.Figure` objects built without pyplot (no global state),
so they show inline in Jupyter and can be saved or embedded anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def png_figure(path: str | os.PathLike[str]) -> Figure:
    """A matplotlib Figure showing a PNG file (no pyplot state: safe in scripts and notebooks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    h, w = img.shape[:2]
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(img)
    ax.set_axis_off()
    return fig


@dataclass
class Evaluation:
    """What :meth:`Run.evaluate` wrote and found: ``metrics`` (the metrics.json dict), ``report`` (html).

    ``description``: what the images are (internal split or external data); ``excluded``: external images
    left out as copies of the run's training/validation images (``path``, ``match``, ``seen_path``,
    ``seen_split``); ``generalisation``: the internal-vs-external table (None without external data);
    ``others``: the evaluations of further datasets of the same call.
    """

    metrics: dict[str, Any]
    eval_dir: Path
    report: Path
    description: str = ""
    excluded: list[dict[str, str]] = field(default_factory=list)
    generalisation: dict[str, Any] | None = None
    others: list[Evaluation] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, Figure]:
        """The report's pictures as matplotlib Figures, by file stem (``roc``, ``confusion_matrix``, ...)."""
        return {p.stem: png_figure(p) for p in sorted(self.eval_dir.glob("*.png"))}

    def headline(self) -> dict[str, Any]:
        """Main metrics with 95% CIs: ``{metric: {"value", "low", "high"}}``."""
        return dict(self.metrics.get("ci", {}))

    def table(self) -> pd.DataFrame:
        """The headline metrics as a DataFrame: ``value``, ``low``, ``high`` per metric (95% CI).

        Example: ``run.evaluate().table().loc["ROC AUC", "value"]``
        """
        from medxfer.evaluate.display import headline_frame

        return headline_frame(self.metrics)

    def __repr__(self) -> str:
        from medxfer.evaluate.display import evaluation_text

        return evaluation_text(self.metrics, self.report)

    def _repr_html_(self) -> str:
        from medxfer.evaluate.display import evaluation_html

        return evaluation_html(self.metrics, self.eval_dir, self.report)


@dataclass
class Explanation:
    """Grad-CAM of one image: ``heatmap`` (S, S) in [0, 1], ``overlay`` (uint8 RGB), the explained class."""

    label: str
    probability: float
    heatmap: np.ndarray
    overlay: np.ndarray
    path: Path | None = None

    @property
    def figure(self) -> Figure:
        """The overlay as a matplotlib Figure titled with the class and its probability."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 4.3), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.imshow(self.overlay)
        ax.set_title(f"{self.label}  P={self.probability:.3f}")
        ax.set_axis_off()
        return fig

    def __repr__(self) -> str:
        from medxfer.evaluate.display import explanation_text

        return explanation_text(self.label, self.probability, self.heatmap, self.path)

    def _repr_html_(self) -> str:
        from medxfer.evaluate.display import explanation_html

        return explanation_html(self.label, self.probability, self.overlay)
