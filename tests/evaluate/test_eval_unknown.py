"""Labels a model does not know are never dropped in silence (issue 22 item 2).

Real X-rays: Kermany ``NORMAL/``/``PNEUMONIA/`` and COVID-19 images from covid19-radiography, scored by
an untrained normal/pneumonia run. Old code: the COVID images were dropped with exit 0 and the upper-case
folders gave "no image left after mapping labels".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.datasets import DatasetError, load_datasets, parse_label_map, refuse_unknown

cli = CliRunner()


@pytest.fixture
def mixed(shared_data: Path, tmp_path: Path) -> Path:
    """``NORMAL/`` 4, ``PNEUMONIA/`` 4 Kermany images and ``covid/`` 3 covid19-radiography images."""
    root = tmp_path / "mixed"
    picks = {
        "NORMAL": sorted((shared_data / "kermany" / "train" / "NORMAL").glob("*.jpeg"))[:4],
        "PNEUMONIA": sorted((shared_data / "kermany" / "train" / "PNEUMONIA").glob("*.jpeg"))[:4],
        "covid": sorted((shared_data / "covid19-radiography" / "COVID").glob("*.jpg"))[:3],
    }
    for label, files in picks.items():
        assert files, label
        (root / label).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / label / f.name)
    return root


@pytest.fixture
def task_run(tiny_run: Path) -> Path:
    """The tiny normal/pneumonia run, trained (as its config says) with task kermany-binary."""
    (tiny_run / "config.yaml").write_text("data:\n  task: kermany-binary\nmodel:\n  backbone: custom_cnn\n")
    return tiny_run


def test_loader_counts_labels_the_task_does_not_name(mixed: Path) -> None:
    table = load_datasets([f"folder:{mixed}"], task="kermany-binary")
    assert table.class_names == ["normal", "pneumonia"]  # NORMAL/ and PNEUMONIA/ match ignoring case
    assert sorted(table.table["label_name"].value_counts().items()) == [("normal", 4), ("pneumonia", 4)]
    assert table.unknown == {"covid": 3}
    with pytest.raises(DatasetError) as err:
        refuse_unknown(table, [f"folder:{mixed}"])
    message = str(err.value)
    assert "covid: 3 images" in message and "the model knows normal, pneumonia" in message
    assert "--label-map covid=pneumonia" in message and "--drop-unknown" in message
    assert refuse_unknown(table, ["x"], drop_unknown=True) is table


def test_model_classes_match_folders_ignoring_case(mixed: Path) -> None:
    table = load_datasets([f"folder:{mixed}"], classes=["normal", "pneumonia"])
    assert table.class_names == ["normal", "pneumonia"]
    assert set(table.table["label_name"]) == {"normal", "pneumonia"}
    assert table.unknown == {"covid": 3}


def test_nothing_maps_names_the_labels_and_what_to_pass(mixed: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_datasets([f"folder:{mixed}"], classes=["bacterial", "viral"])
    message = str(err.value)
    assert "NORMAL: 4" in message and "covid: 3" in message and "the model knows bacterial, viral" in message
    assert "--task" in message and "--label-map" in message and "kermany:PATH" in message


def test_label_map_option_parses_and_rejects() -> None:
    assert parse_label_map(["covid=pneumonia", "lung_opacity=-"]) == {
        "covid": "pneumonia",
        "lung_opacity": None,
    }
    with pytest.raises(DatasetError, match="RAW=CLASS"):
        parse_label_map(["covid"])


def _evaluate(run: Path, *args: str) -> tuple[int, str]:
    res = cli.invoke(app, ["evaluate", str(run), *args, "--n-boot", "20", "--worst", "0"])
    return res.exit_code, res.output


def test_cli_refuses_unknown_class_then_drops_or_maps_it(task_run: Path, mixed: Path) -> None:
    code, out = _evaluate(task_run, "--data", f"folder:{mixed}")
    assert code == 2, out
    assert "covid: 3 images" in out and "normal, pneumonia" in out
    assert not (task_run / "eval").exists() or not any((task_run / "eval").rglob("metrics.json"))
    code, out = _evaluate(task_run, "--data", f"folder:{mixed}", "--drop-unknown")
    assert code == 0, out
    assert "8 images" in out and "dropped (labels the model does not know): covid: 3 images" in out
    code, out = _evaluate(
        task_run, "--data", f"folder:{mixed}", "--label-map", "covid=pneumonia", "--name", "m"
    )
    assert code == 0, out
    assert "11 images" in out


def test_cli_upper_case_folders_evaluate_without_a_task(tiny_run: Path, mixed: Path) -> None:
    shutil.rmtree(mixed / "covid")
    code, out = _evaluate(tiny_run, "--data", f"folder:{mixed}")
    assert code == 0, out
    assert "8 images" in out


def test_api_refuses_unknown_unless_dropped(task_run: Path, mixed: Path) -> None:
    import medxfer

    run = medxfer.load_run(task_run)
    with pytest.raises(DatasetError, match="covid: 3 images"):
        run.evaluate(f"folder:{mixed}", split=None, n_boot=20, worst=0)
    ev = run.evaluate(f"folder:{mixed}", split=None, n_boot=20, worst=0, drop_unknown=True)
    assert ev.metrics["n_images"] == 8
    assert ev.metrics["dropped_unknown"] == {"covid": 3}  # also in metrics.json
    assert "left out (labels the model does not know): covid: 3 images" in repr(ev)


def test_api_label_map_scores_unknown_labels_as_a_class(task_run: Path, mixed: Path) -> None:
    """``Run.evaluate(label_map=)`` is ``--label-map``: the 3 COVID images scored as pneumonia."""
    import medxfer

    run = medxfer.load_run(task_run)
    ev = run.evaluate(f"folder:{mixed}", n_boot=20, worst=0, label_map={"covid": "pneumonia"}, name="m")
    assert ev.metrics["n_images"] == 11
    assert not ev.metrics.get("dropped_unknown")
    ev = run.evaluate(f"folder:{mixed}", n_boot=20, worst=0, label_map={"covid": None}, name="d")
    assert ev.metrics["n_images"] == 8  # None drops the label, as RAW=- does
