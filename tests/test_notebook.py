"""examples/quickstart.ipynb runs top to bottom on real Kermany images (nbclient + ipykernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_on_real_images(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a newcomer runs it: no MEDXFER_SHARED_DATA, the notebook in a clone's examples/ and the data in
    ../shared/data beside the clone (a link here), so its relative default has to resolve."""
    import nbformat
    from nbclient import NotebookClient

    clone = tmp_path / "clone"
    (clone / "examples").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(shared_data.resolve(), target_is_directory=True)
    monkeypatch.delenv("MEDXFER_SHARED_DATA", raising=False)
    monkeypatch.setenv("MEDXFER_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MEDXFER_NOTEBOOK_PER_CLASS", "40")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(clone / "examples")}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # confusion matrix, ROC, reliability + two Grad-CAM overlays
    run = tmp_path / "out" / "run"
    assert (run / "model.json").is_file() and (run / "eval" / "test" / "report.html").is_file()
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "roc_auc" in text and "['normal', 'pneumonia']" in text
