"""evaluate_run on real kermany X-rays (a small subset): patient ids group the bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def test_evaluate_real_kermany_subset(shared_data: Path, tiny_run: Path) -> None:
    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    table = load_datasets([f"kermany:{shared_data / 'kermany'}"], task="kermany-binary")
    df = table.table
    # 3 patients with several images from each class: a real grouped test set of known size
    picked = []
    for label in table.class_names:
        pats = df[df["label_name"] == label].groupby("patient_id").size()
        picked += list(pats[pats >= 2].index[:3])
    sub = df[df["patient_id"].isin(picked)].copy()
    sub["split"] = "test"
    result = evaluate_run(tiny_run, table.with_table(sub), split="test", worst=3, n_boot=30)
    assert result["n_images"] == len(sub) and result["n_patients"] == 6
    assert result["bootstrap"]["unit"] == "patient"
    assert sorted(result["class_names"]) == sorted(table.class_names)
    saved = json.loads((Path(result["eval_dir"]) / "metrics.json").read_text())
    counts = np.array(saved["metrics"]["confusion_matrix"]).sum(axis=1)
    assert counts.sum() == len(sub) and (counts > 0).all()
    html = Path(result["report"]).read_text()
    assert html.count("data:image/png;base64,") == 5 and "patients per class" in html
