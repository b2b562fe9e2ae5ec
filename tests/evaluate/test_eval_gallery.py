"""Evaluation plots: no gallery caption overlaps an image (issue 14), one-class curves without warnings."""

from __future__ import annotations

import numpy as np


def _items(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (60, 60), dtype=np.uint8)
    over = np.stack([img] * 3, axis=-1)
    title = "a_rather_long_file_name_0001.png\ntrue normal P=0.12\npred pneumonia (P1>=0.38) P=0.88  loss 2.1"
    return [{"image": img, "overlay": over, "title": title, "overlay_title": "Grad-CAM: pneumonia"}] * n


def _overlaps(a, b) -> bool:  # noqa: ANN001
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_gallery_captions_clear_of_images() -> None:
    from matplotlib.text import Text

    from medxfer.evaluate.plots import gallery_figure

    fig = gallery_figure(_items(6), columns=2)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images = [im.get_window_extent(renderer) for ax in fig.axes for im in ax.images]
    captions = {item["title"] for item in _items(1)} | {"Grad-CAM: pneumonia"}
    texts = [t.get_window_extent(renderer) for t in fig.findobj(Text) if t.get_text() in captions]
    assert len(images) == 12 and len(texts) == 12
    boxes = texts + images
    clashes = [
        (i, j)
        for i in range(len(texts))
        for j in range(len(boxes))
        if i != j and _overlaps(boxes[i], boxes[j])
    ]
    assert clashes == []


def test_one_class_curves_say_undefined_without_warnings(tmp_path) -> None:  # noqa: ANN001
    """An external set of one class (e.g. only normal films): no legend warning, a note instead."""
    import warnings

    from medxfer.evaluate.plots import plot_pr, plot_roc

    y, p = np.zeros(5, dtype=int), np.tile([0.7, 0.3], (5, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_roc(y, p, ["a", "b"], tmp_path / "roc.png") and plot_pr(
            y, p, ["a", "b"], tmp_path / "pr.png"
        )
