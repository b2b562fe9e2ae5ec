"""report.html opens in headless Chromium: every section present, every embedded image decodes."""

from __future__ import annotations

from pathlib import Path

SECTIONS = ("disclaimer", "summary", "per-class", "figures", "worst", "data", "warnings", "config")


def test_report_renders_in_chromium(tiny_folder: Path, tiny_run: Path, tmp_path: Path, browser) -> None:  # noqa: ANN001
    from medxfer.data.datasets import load_datasets
    from medxfer.inference.evaluation import evaluate_run

    table = load_datasets([str(tiny_folder)])
    table.table["split"] = "test"
    report = Path(evaluate_run(tiny_run, table, split="test", worst=4, n_boot=20)["report"])
    shot = tmp_path / "report.png"
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(report.as_uri())
    present = {s: page.locator(f"#{s}").count() for s in SECTIONS}
    decoded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert all(n >= 1 for n in present.values()), present
    assert decoded == [True] * 5
    assert shot.stat().st_size > 20_000
