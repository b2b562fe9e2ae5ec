"""Notebook objects (issue 22 item 6): short reprs and HTML for Evaluation and Explanation,
``ev.table()``, ``run.history`` and ``run.show_batch()``.

Old code: ``repr(Evaluation)`` was the ~5 kB metrics dict, ``repr(Explanation)`` printed whole arrays,
and a Run had neither ``history`` nor ``show_batch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def test_evaluation_repr_html_and_table(api_run) -> None:  # noqa: ANN001
    ev = api_run.evaluate(split="val", n_boot=10, worst=0, progress=False)
    text = repr(ev)
    assert text.startswith("Evaluation('val'") and "ROC AUC" in text and "report" in text
    assert len(text) < 400 and "confusion_matrix" not in text
    page = ev._repr_html_()
    assert "<table>" in page and "ROC AUC" in page and "data:image/png;base64," in page
    assert len(page) < 60_000  # a thumbnail, not the full report
    table = ev.table()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["key", "value", "low", "high"]
    auc = ev.metrics["ci"]["roc_auc"]
    assert table.loc["ROC AUC", "value"] == auc["value"] and table.loc["ROC AUC", "low"] == auc["low"]


def test_explanation_repr_is_short_and_html_shows_the_overlay(api_run, api_data: Path) -> None:  # noqa: ANN001
    ex = api_run.explain(sorted(api_data.rglob("*.png"))[0])
    text = repr(ex)
    assert text.startswith(f"Explanation({ex.label}, P=") and "array" not in text and len(text) < 120
    page = ex._repr_html_()
    assert "data:image/png;base64," in page and f"Grad-CAM: {ex.label}" in page


def test_history_is_the_metrics_csv(api_run) -> None:  # noqa: ANN001
    history = api_run.history
    assert list(history["epoch"]) == [1, 2] and list(history["stage"]) == ["head", "ft"]
    assert {"train_loss", "val_loss", "val_auc"} <= set(history.columns)


def test_show_batch_shows_augmented_training_images(api_run) -> None:  # noqa: ANN001
    from matplotlib.figure import Figure

    from medxfer.data.images import read_image
    from medxfer.data.transforms import prepare
    from medxfer.inference.notebook import augmented_batch

    fig = api_run.show_batch(n=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    images, labels, title = augmented_batch(api_run.path, api_run.info, n=6)
    splits = pd.read_csv(api_run.path / "splits.csv")
    train = splits[splits["split"] == "train"]
    assert set(labels) <= set(train["label_name"]) and "'ft'" in title and "light" in title
    assert all(img.shape[:2] == (32, 32) and img.dtype == np.uint8 for img in images)
    plain = [prepare(read_image(p), api_run.info) for p in train["path"]]
    # the last stage augments ("light"): not every shown image equals a plain prepared training image
    assert not all(any(np.array_equal(img, q) for q in plain) for img in images)
    head, _, head_title = augmented_batch(api_run.path, api_run.info, n=6, stage=0)  # augment: none
    assert "'head'" in head_title
    assert all(any(np.array_equal(img, q) for q in plain) for img in head)
