"""``medxfer ensemble``: two trained runs saved as one run that every command treats as a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import medxfer
from medxfer.cli import app
from medxfer.data.images import read_image
from medxfer.inference.predictor import Predictor


@pytest.fixture(scope="module")
def members(api_run: medxfer.Run, tiny_trainer) -> list[Path]:  # noqa: ANN001
    """The session's tiny run and a second one trained on the same splits with another seed."""
    return [api_run.path, tiny_trainer("seed1", {"train.seed": 1}).path]


@pytest.fixture(scope="module")
def ens(members: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ens") / "ens"
    result = CliRunner().invoke(app, ["ensemble", *map(str, members), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "ensemble of 2 runs" in result.stderr and "--choose-threshold" in result.stderr
    return out


def _images(api_data: Path) -> list[np.ndarray]:
    files = sorted((api_data / "disc").glob("*.png"))[:3] + sorted((api_data / "bar").glob("*.png"))[:3]
    return [read_image(p) for p in files]


def test_the_run_folder_records_members_and_shares_their_splits(ens: Path, members: list[Path]) -> None:
    info = json.loads((ens / "model.json").read_text())
    assert [m["run"] for m in info["members"]] == [str(p.resolve()) for p in members]
    assert info["class_names"] == ["bar", "disc"] and info["input_size"] == 32 and info["threshold"] == 0.5
    assert (ens / "splits.csv").read_bytes() == (members[0] / "splits.csv").read_bytes()
    assert (ens / "config.yaml").read_bytes() == (members[0] / "config.yaml").read_bytes()
    assert json.loads((ens / "ensemble.json").read_text())["splits"] == "shared"
    assert "ensemble of 2" in (ens / "summary.txt").read_text()
    own = [json.loads((m / "train_summary.json").read_text()) for m in members]
    cost = json.loads((ens / "train_summary.json").read_text())
    assert cost["params"] == sum(s["params"] for s in own) and cost["members"] == own
    # a member's val metrics, backbone and epochs are not the ensemble's: only under its own entry
    assert set(cost) == {"seconds", "fit_seconds", "params", "members"}, sorted(cost)
    from medxfer.evaluate.compare import run_row

    row = run_row(ens)
    assert row["backbone"] == "custom_cnn + custom_cnn" and row["params"] == cost["params"]
    # a single network's model.json does not grow a members field, an ensemble's has no single network
    assert "members" not in json.loads((members[0] / "model.json").read_text())
    assert not {"network", "backbone", "weights", "head"} & set(json.loads((ens / "model.json").read_text()))


def test_probabilities_are_the_mean_of_the_members(ens: Path, members: list[Path], api_data: Path) -> None:
    images = _images(api_data)
    got = Predictor(ens).predict_arrays(images)
    parts = [Predictor(m).predict_arrays(images) for m in members]
    assert not np.allclose(parts[0], parts[1], atol=1e-3)  # different seeds: different members
    np.testing.assert_allclose(got, np.mean(parts, axis=0), atol=1e-5)


def test_onnx_export_is_one_graph_that_matches(ens: Path, api_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ens"
    shutil.copytree(ens, run)
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx"])
    assert result.exit_code == 0, result.stderr
    images = _images(api_data)
    onnx = Predictor(run, engine="onnx").predict_arrays(images)
    np.testing.assert_allclose(onnx, Predictor(run).predict_arrays(images), atol=1e-4)


def test_evaluate_predict_and_cams_work_on_the_ensemble(ens: Path, tmp_path: Path) -> None:
    run = tmp_path / "ens"
    shutil.copytree(ens, run)
    args = ["evaluate", str(run), "--split", "val", "--n-boot", "20", "--worst", "2"]
    args += ["--choose-threshold", "youden"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr
    info = json.loads((run / "model.json").read_text())  # rewritten with the threshold: still an ensemble
    assert info["threshold_method"] == "youden" and len(info["members"]) == 2
    metrics = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    val = pd.read_csv(run / "splits.csv").query("split == 'val'")
    assert metrics["n_images"] == len(val) and 0.0 <= metrics["metrics"]["roc_auc"] <= 1.0
    assert (run / "eval" / "val" / "worst.png").is_file()  # the gallery: Grad-CAM of the ensemble
    out, cams = tmp_path / "p.csv", tmp_path / "cams"
    paths = list(val["path"][:2])
    res = CliRunner().invoke(app, ["predict", str(run), *paths, "--out", str(out), "--cam", str(cams)])
    assert res.exit_code == 0, res.stderr
    assert len(pd.read_csv(out)) == 2 and len(list(cams.glob("*.png"))) == 2


def test_incompatible_members_are_refused_naming_the_field(members: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(members[1], other)
    info = json.loads((other / "model.json").read_text())
    info["class_names"] = ["disc", "bar"]
    (other / "model.json").write_text(json.dumps(info))
    res = CliRunner().invoke(app, ["ensemble", str(members[0]), str(other), "--out", str(tmp_path / "e")])
    assert res.exit_code == 2
    assert "field 'class_names'" in res.stderr and str(other / "model.json") in res.stderr
    assert not (tmp_path / "e").exists()


def test_different_splits_are_refused_unless_allowed(members: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(members[1], other)
    splits = pd.read_csv(other / "splits.csv")
    moved = splits.index[splits["split"] == "val"][0]
    splits.loc[moved, "split"] = "train"  # this member trained on one of the other's val images
    splits.to_csv(other / "splits.csv", index=False)
    out = tmp_path / "e"
    res = CliRunner().invoke(app, ["ensemble", str(members[0]), str(other), "--out", str(out)])
    assert res.exit_code == 2 and "leak" in res.stderr and "--allow-different-splits" in res.stderr
    args = ["ensemble", str(members[0]), str(other), "--out", str(out), "--allow-different-splits"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr
    merged = pd.read_csv(out / "splits.csv").set_index("path")["split"]
    first = pd.read_csv(members[0] / "splits.csv").set_index("path")["split"]
    assert merged[splits.loc[moved, "path"]] == "train"
    assert list(merged.index) == list(first.index)  # same rows, same order
    assert (merged != first).sum() == 1
    res = CliRunner().invoke(app, args)  # the run exists now: not replaced without --force
    assert res.exit_code == 2 and "--force" in res.stderr
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0


def test_a_bad_members_entry_is_refused_on_load(ens: Path, tmp_path: Path) -> None:
    from medxfer.runs import ModelInfoError, load_model, read_model_info

    run = tmp_path / "ens"
    shutil.copytree(ens, run)
    info = json.loads((run / "model.json").read_text())
    info["members"][1]["backbone"] = "resnet9000"
    (run / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelInfoError, match=r"field 'members\.1\.backbone': unknown backbone 'resnet9000'"):
        read_model_info(run)
    info["members"][1]["backbone"] = "custom_cnn"
    info["members"].append(dict(info["members"][0]))  # a third member without weights
    (run / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelInfoError, match=r"'members'.*missing members\.2\."):
        load_model(run)


def test_features_of_an_ensemble_are_refused(ens: Path) -> None:
    from medxfer.features.extract import run_meta

    with pytest.raises(ValueError, match="one member's run folder"):
        run_meta(ens)


def test_the_api_function_returns_a_run(members: list[Path], tmp_path: Path) -> None:
    notes: list[str] = []
    run = medxfer.ensemble(members, tmp_path / "e", log=notes.append)
    assert isinstance(run, medxfer.Run) and len(run.info.members) == 2
    assert any("--choose-threshold" in n for n in notes)
    assert run.summary().count("member ") == 2


def test_resuming_an_ensemble_as_a_training_run_is_refused(ens: Path, tmp_path: Path) -> None:
    run = tmp_path / "ens"
    shutil.copytree(ens, run)
    before = (run / "model.json").read_bytes()
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert res.exit_code == 2 and "an ensemble of trained runs" in res.stderr
    assert (run / "model.json").read_bytes() == before and not (run / "checkpoints").exists()


def test_serve_names_the_members(ens: Path, members: list[Path]) -> None:
    from fastapi.testclient import TestClient

    from medxfer.serve.app import create_app

    with TestClient(create_app(ens)) as client:
        model = client.get("/api/model").json()
        assert model["members"] == ["custom_cnn", "custom_cnn"]
        assert model["backbone"] == "ensemble of custom_cnn + custom_cnn" and model["weights"] == "none"
    with TestClient(create_app(members[0])) as client:
        model = client.get("/api/model").json()
        assert "members" not in model and model["backbone"] == "custom_cnn"


def test_force_keeps_a_stale_export_and_members_calibration_is_not_carried(
    members: list[Path], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(members[1], other)
    info = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**info, "threshold": 0.3, "temperature": 2.0}))
    notes: list[str] = []
    run = medxfer.ensemble([members[0], other], tmp_path / "e", log=notes.append)
    assert run.info.threshold == 0.5 and run.info.temperature == 1.0
    assert any(str(other) in n and "threshold 0.3 and temperature 2" in n for n in notes)
    (tmp_path / "e" / "model.onnx").write_bytes(b"an export of the old model")
    with pytest.raises(ValueError, match="model.onnx exported from the model there"):
        medxfer.ensemble([members[0], other], tmp_path / "e", force=True)
    assert (tmp_path / "e" / "model.onnx").read_bytes() == b"an export of the old model"


def test_a_splits_file_without_its_columns_is_named(members: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(members[1], other)
    (other / "splits.csv").write_text("file,fold\na.png,1\n")
    with pytest.raises(ValueError, match=r"other/splits\.csv: needs 'path' and 'split' columns"):
        medxfer.ensemble([members[0], other], tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_members_trained_at_other_input_sizes_form_one_run(
    members: list[Path],
    tiny_trainer,
    api_data: Path,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    """The two-command way to a heterogeneous ensemble: one recipe at another ``model.input_size`` shares
    the splits, and the ensemble takes the larger input (each member resizes it inside the network)."""
    big = tiny_trainer("size48", {"model.input_size": 48}).path
    out = tmp_path / "ens"
    res = CliRunner().invoke(app, ["ensemble", str(members[0]), str(big), "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "input: 48 px" in res.stderr and "custom_cnn at 32 px" in res.stderr
    info = json.loads((out / "model.json").read_text())
    assert info["input_size"] == 48 and [m["input_size"] for m in info["members"]] == [32, 48]
    assert json.loads((out / "ensemble.json").read_text())["splits"] == "shared"
    images = _images(api_data)
    got = Predictor(out).predict_arrays(images)
    parts = [Predictor(m).predict_arrays(images) for m in (members[0], big)]
    assert np.abs(got - np.mean(parts, axis=0)).max() < 0.05  # the 32 px member sees 48 -> 32 px
    res = CliRunner().invoke(app, ["export", str(out), "--format", "onnx"])
    assert res.exit_code == 0, res.stderr
    np.testing.assert_allclose(Predictor(out, engine="onnx").predict_arrays(images), got, atol=1e-4)
    res = CliRunner().invoke(app, ["evaluate", str(out), "--split", "val", "--n-boot", "20", "--worst", "2"])
    assert res.exit_code == 0, res.stderr
    assert (out / "eval" / "val" / "worst.png").is_file()  # Grad-CAM of members at 32 and 48 px
