"""report.html fixes of issue 14: one column per distinct rule, tables within 1280 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["bacterial-pneumonia", "covid-19-confirmed", "normal-no-finding", "viral-pneumonia-other"]


def _result(threshold: float) -> dict:
    from medxfer.inference.evaluation import build_result
    from medxfer.runs import ModelInfo, NetworkSpec

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    p1 = np.clip(0.3 * y + rng.random(40) * 0.7, 0, 1)
    info = ModelInfo(
        class_names=["normal", "pneumonia"],
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=32,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )
    info.threshold, info.threshold_method = threshold, "youden" if threshold != 0.5 else "default"
    return build_result(y, np.stack([1 - p1, p1], 1), info, np.arange(40).astype(str), 20, 0)


def test_default_threshold_is_one_column_not_two() -> None:
    from medxfer.evaluate.report import _headline_rows

    header, rows = _headline_rows(_result(0.5))
    assert header == ["metric", "threshold 0.5 (default)"] and all(len(r) == 2 for r in rows)
    header, _ = _headline_rows(_result(0.38))
    assert header == ["metric", "threshold 0.38 (youden)", "threshold 0.5"]


def _four_class_run(tmp_path: Path) -> tuple[Path, Path]:
    import torch

    from medxfer.models.backbones import build_model
    from medxfer.runs import ModelInfo, NetworkSpec, save_model

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for c in CLASSES:
        (data / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(
                data / c / f"{c}_{i:03d}.png"
            )
    torch.manual_seed(0)
    run = tmp_path / "run4"
    run.mkdir()
    info = ModelInfo(
        class_names=list(CLASSES),
        network=NetworkSpec(backbone="custom_cnn", weights="none"),
        input_size=32,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )
    save_model(run, build_model("custom_cnn", num_classes=4), info)
    return data, run


def test_report_fits_1280_px(tmp_path: Path, browser) -> None:  # noqa: ANN001
    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    data, run = _four_class_run(tmp_path)
    table = load_datasets([str(data)])
    table.table["split"] = "test"
    report = Path(evaluate_run(run, table, split="test", worst=2, n_boot=20)["report"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(report.as_uri())
    page_width = page.evaluate("document.documentElement.scrollWidth")
    widest = page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('table')).map(t => t.scrollWidth))"
    )
    main = page.evaluate("document.body.clientWidth")
    page.close()
    assert page_width <= 1280 and widest <= main
