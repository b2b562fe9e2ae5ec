"""How an evaluation and an explanation look in a notebook: a short text repr, an HTML repr (headline
table with 95% CIs and a small ROC thumbnail; the Grad-CAM overlay) and the headline as a DataFrame.

Pure formatting over what :mod:`medxfer.evaluate.results` holds; images are embedded as base64 PNGs so
the HTML needs no file next to the notebook.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

THUMBNAIL = 220  # pixels, the longer side of the ROC thumbnail


def headline_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """The headline metrics of a ``metrics.json`` dict: one row per metric, ``value``, ``low``, ``high``
    (95% bootstrap CI), indexed by the metric's label (``ROC AUC``, ...)."""
    import pandas as pd

    from medxfer.evaluate.monitors import headline

    rows = []
    for key, label in headline():
        ci = metrics.get("ci", {}).get(key) or {}
        rows.append({"metric": label, "key": key, **{k: ci.get(k) for k in ("value", "low", "high")}})
    return pd.DataFrame(rows).set_index("metric")


def _ci(value: Any, low: Any, high: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if low is None else f"{value:.3f} ({low:.3f}-{high:.3f})"


def evaluation_text(metrics: dict[str, Any], report: Path) -> str:
    """``Evaluation('test': 624 images, 234 patients; threshold 0.5 (youden); ROC AUC 0.951 (0.93-0.97),
    ...; report runs/kb/eval/test/report.html)``: a few lines, never the whole dict."""
    frame = headline_frame(metrics).head(3)
    scores = ", ".join(f"{label} {_ci(r.value, r.low, r.high)}" for label, r in frame.iterrows())
    return (
        f"Evaluation({metrics.get('name', '?')!r}: {metrics.get('n_images', '?')} images, "
        f"{metrics.get('n_patients', '?')} patients; {metrics.get('rule', '')};\n  {scores};\n"
        f"{dropped_text(metrics)}  report {report})"
    )


def dropped_text(metrics: dict[str, Any]) -> str:
    """``  left out (labels the model does not know): covid: 3 images;\n`` or ``""``."""
    from medxfer.io import counts_text

    dropped = metrics.get("dropped_unknown")
    return f"  left out (labels the model does not know): {counts_text(dropped)};\n" if dropped else ""


def png_base64(rgb: np.ndarray) -> str:
    """A uint8 image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_uri(path: Path, size: int = THUMBNAIL) -> str | None:
    """A small copy of the PNG at ``path`` as a data URI; None when there is no such file."""
    from PIL import Image

    if not path.is_file():
        return None
    img = Image.open(path).convert("RGB")
    img.thumbnail((size, size))
    return png_base64(np.asarray(img))


def evaluation_html(metrics: dict[str, Any], eval_dir: Path, report: Path) -> str:
    """The headline table with CIs beside a ROC thumbnail, and the report's path."""
    rows = "".join(
        f"<tr><td>{html.escape(str(label))}</td><td>{_ci(r.value, r.low, r.high)}</td></tr>"
        for label, r in headline_frame(metrics).iterrows()
    )
    roc = thumbnail_uri(eval_dir / "roc.png")
    img = f"<img src='{roc}' alt='ROC curves' style='margin-left:1em'>" if roc else ""
    title = html.escape(
        f"{metrics.get('name', '?')}: {metrics.get('n_images', '?')} images, "
        f"{metrics.get('n_patients', '?')} patients; {metrics.get('rule', '')}"
    )
    return (
        f"<div><b>Evaluation</b> {title}<div style='display:flex;align-items:flex-start'>"
        f"<table><tr><th>metric</th><th>value (95% CI)</th></tr>{rows}</table>{img}</div>"
        f"<small>report: {html.escape(str(report))}</small></div>"
    )


def explanation_text(label: str, probability: float, heatmap: np.ndarray, path: Path | None) -> str:
    """``Explanation(pneumonia, P=0.931, heat-map 7x7, overlay cams/x.png)``."""
    where = f", overlay {path}" if path is not None else ""
    size = "x".join(str(n) for n in np.shape(heatmap))
    return f"Explanation({label}, P={probability:.3f}, heat-map {size}{where})"


def explanation_html(label: str, probability: float, overlay: np.ndarray) -> str:
    """The Grad-CAM overlay with the class and its probability."""
    caption = html.escape(f"Grad-CAM: {label}, P={probability:.3f}")
    return (
        f"<figure style='display:inline-block;margin:0'><img src='{png_base64(overlay)}' "
        f"style='max-width:320px' alt='{caption}'><figcaption>{caption}</figcaption></figure>"
    )
