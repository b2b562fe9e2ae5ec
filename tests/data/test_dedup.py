"""Duplicate groups become one patient, and a grouped split then keeps copies together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medxfer.data.datasets import load_datasets
from medxfer.data.dedup import merge_duplicate_patients
from medxfer.data.splits import apply_splits, assign_splits, save_splits


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 255, (48, 48), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}.png")
            if i < 3:  # a near copy (one pixel changed) and an exact copy of the first three images
                near = img.copy()
                near[0, 0] ^= 1
                Image.fromarray(near).save(root / cls / f"{i}_near.png")
                (root / cls / f"{i}_copy.png").write_bytes((root / cls / f"{i}.png").read_bytes())
    return root


def test_duplicates_share_a_patient_and_a_split(tmp_path: Path) -> None:
    table = load_datasets([str(_folder(tmp_path / "d"))])
    merged, changed = merge_duplicate_patients(table, progress=False)
    assert changed == 2 * 3 * 2  # in each class, the near and the exact copy of three images
    ids = merged.table.set_index(merged.table["path"].map(lambda p: Path(p).parent.name + "/" + Path(p).stem))
    for cls in ("a", "b"):
        for i in range(3):
            group = {ids.loc[f"{cls}/{i}{s}", "patient_id"] for s in ("", "_near", "_copy")}
            assert len(group) == 1
    assert merged.table["patient_id"].nunique() == 2 * 10
    for seed in range(5):
        split = assign_splits(merged, val=0.3, seed=seed).table
        assert (split.groupby("patient_id")["split"].nunique() == 1).all()
    # splits.csv carries the merged ids back to a freshly loaded table (evaluation resamples these groups)
    save_splits(assign_splits(merged, val=0.3, seed=0), tmp_path / "splits.csv")
    again = apply_splits(table, tmp_path / "splits.csv").table
    assert again["patient_id"].tolist() == merged.table["patient_id"].tolist()


def test_merge_patients_links_whole_patients() -> None:
    import pandas as pd

    from medxfer.data.datasets import ImageTable
    from medxfer.data.dedup import merge_patients

    df = pd.DataFrame(
        {
            "path": ["/a1", "/a2", "/b1", "/b2", "/c1"],
            "label": [0, 0, 1, 1, 0],
            "label_name": ["x", "x", "y", "y", "x"],
            "patient_id": ["pa", "pa", "pb", "pb", "pc"],
            "source": "s",
            "view": "",
            "split": "",
        }
    )
    merged, changed = merge_patients(ImageTable(["x", "y"], df), [["/a2", "/b1"], ["/zz"]])
    assert merged.table["patient_id"].tolist() == ["pa", "pa", "pa", "pa", "pc"]
    assert changed == 2
