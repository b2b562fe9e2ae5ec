"""Tests for the shortcut probe on synthetic images: a planted corner marker is found and named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medxfer.data.datasets import ImageTable
from medxfer.data.probe import cramers_v, mask_thumbs, shortcut_probe

N_PER_CLASS = 30


def _make(tmp_path: Path, marker: bool, wide_class1: bool = False) -> ImageTable:
    """Two classes of random-texture images; with ``marker`` class 1 has a white bottom-right corner."""
    rng = np.random.default_rng(0)
    rows = []
    for label in (0, 1):
        for i in range(N_PER_CLASS):
            width = 80 if (wide_class1 and label == 1) else 64
            img = rng.integers(0, 256, (64, width, 3), dtype=np.uint8)
            if marker and label == 1:
                img[48:, width - width // 4 :] = 255
            path = tmp_path / f"c{label}_{i}.png"
            Image.fromarray(img).save(path)
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "label_name": "ab"[label],
                    "patient_id": f"p{label}_{i // 2}",
                    "source": "s",
                    "view": "",
                    "split": "",
                }
            )
    return ImageTable(["a", "b"], pd.DataFrame(rows))


def test_planted_corner_marker_is_named(tmp_path: Path) -> None:
    result = shortcut_probe(_make(tmp_path, marker=True))
    assert result.flagged == ["bottom-right corner"]
    assert len(result.warnings) == 1 and "'bottom-right corner'" in result.warnings[0]
    score = next(s for s in result.scores if s.warn)
    assert score.kind == "pattern" and score.association == 1.0 and score.pattern_share == 0.5
    assert result.folds == 5 and result.num_images == 2 * N_PER_CLASS


def test_no_marker_no_warning(tmp_path: Path) -> None:
    result = shortcut_probe(_make(tmp_path, marker=False))
    assert result.warnings == [] and result.flagged == []


def test_masking_the_marker_quiets_the_probe(tmp_path: Path) -> None:
    result = shortcut_probe(_make(tmp_path, marker=True), mask_boxes=[[0.7, 0.7, 1.0, 1.0]])
    assert result.flagged == []


def test_image_size_statistic_warns(tmp_path: Path) -> None:
    result = shortcut_probe(_make(tmp_path, marker=False, wide_class1=True))
    assert result.flagged == ["image size"]
    score = next(s for s in result.scores if s.name == "image size")
    assert score.balanced_accuracy == 1.0 and score.permuted_balanced_accuracy < 0.75


def test_mask_rounds_outwards_and_cramers_v() -> None:
    thumbs = np.full((1, 32, 32, 3), 200, np.uint8)
    out = mask_thumbs(thumbs, [[0.0, 0.65, 0.3, 1.0]])
    assert out[0, 20, 9].tolist() == [0, 0, 0] and out[0, 19, 10].tolist() == [200, 200, 200]
    assert (out[0, 20:, :10] == 0).all() and (out[0, :20] == 200).all()
    assert cramers_v(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7])) == 1.0
    assert cramers_v(np.array([0, 1, 0, 1]), np.array([5, 5, 7, 7])) == 0.0


@pytest.mark.slow
def test_real_colon_corner_found_then_quiet_after_mask(shared_data: Path) -> None:
    from medxfer.data.datasets import load_datasets
    from medxfer.data.scan import scan_files

    table = load_datasets([f"folder:{shared_data / 'colon'}"])
    assert len(table) == 1431
    facts = scan_files(list(table.table["path"]), progress=False)
    before = shortcut_probe(table, facts)
    assert before.flagged == ["bottom-left corner"]
    after = shortcut_probe(table, facts, mask_boxes=[[0.0, 0.65, 0.3, 1.0]])
    assert after.flagged == []
