"""The public Python API (medxfer/api.py): train -> evaluate / predict / explain / export / summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import medxfer
from medxfer.api import make_config


def test_import_is_light_and_train_stays_callable() -> None:
    """``import medxfer`` loads no torch/numpy; ``medxfer.train`` is the API function after every
    submodule is imported (the training package is ``medxfer.training``: no shared name)."""
    code = (
        "import sys, medxfer\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'\n"
        "import pkgutil, importlib, medxfer.api\n"
        "for m in pkgutil.walk_packages(medxfer.__path__, 'medxfer.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert medxfer.train is medxfer.api.train and medxfer.tune is medxfer.api.tune\n"
        "try:\n"
        "    medxfer.train(None)\n"
        "except ValueError as e:\n"
        "    assert 'out=' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "print(medxfer.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == medxfer.__version__


def test_make_config_overrides() -> None:
    cfg = make_config(
        None,
        data=["folder:/x"],
        task="kermany-binary",
        overrides={"train.batch_size": 16, "stages.0.lr": 0.5},
    )
    assert cfg.data.specs == ["folder:/x"] and cfg.data.task == "kermany-binary"
    assert cfg.train.batch_size == 16 and cfg.stages[0].lr == 0.5
    again = make_config(cfg, overrides={"model.head": {"kind": "mlp", "hidden": 8, "dropout": 0.0}})
    assert again.model.head["hidden"] == 8 and again.train.batch_size == 16
    with pytest.raises(ValueError, match="train.optimizer"):
        make_config(None, overrides={"train.optimizer": "lbfgs"})


def test_public_functions_take_explicit_keywords_only() -> None:
    """No ``**kwargs`` anywhere in the public API: a misspelt keyword is a TypeError, not silently kept."""
    import inspect

    from medxfer.workflow.run import Run

    public = [getattr(medxfer, name) for name in medxfer.api.__all__]
    members = [getattr(Run, name) for name in dir(Run) if not name.startswith("_")]
    for fn in [f for f in public + members if callable(f) and not inspect.isclass(f)]:
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, fn.__qualname__
    with pytest.raises(TypeError, match="train__batch_size"):
        make_config(None, train__batch_size=16)  # type: ignore[call-arg]


def test_train_writes_run_with_overrides_and_summary(api_run: medxfer.Run) -> None:
    saved = yaml.safe_load((api_run.path / "config.yaml").read_text())
    assert saved["model"]["backbone"] == "custom_cnn" and saved["train"]["batch_size"] == 8
    assert [s["name"] for s in saved["stages"]] == ["head", "ft"]
    assert api_run.class_names == ["bar", "disc"] and api_run.info.input_size == 32
    assert api_run.train_result is not None and api_run.train_result.seconds > 0
    summary = (api_run.path / "summary.txt").read_text()
    assert "Trainable params" in summary and "Output Shape" in summary
    assert "trainable=head" in summary and "trainable=all" in summary
    assert api_run.summary() == summary  # one function behind `train`, `summary RUN` and Run.summary


def test_load_run_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model.json"):
        medxfer.load_run(tmp_path)


def test_evaluate_uses_the_runs_data_and_returns_figures(api_run: medxfer.Run, tmp_path: Path) -> None:
    run = medxfer.load_run(api_run.path)
    ev = run.evaluate(split="val", n_boot=20, worst=2)
    splits = pd.read_csv(run.path / "splits.csv")
    assert ev.metrics["n_images"] == int((splits["split"] == "val").sum())
    assert ev.report.is_file() and ev.report.name == "report.html"
    html = ev.report.read_text()
    assert "id='model'" in html and "Trainable params" in html  # summary.txt shown in the report
    assert (ev.eval_dir / "metrics.json").is_file() and ev.eval_dir.name == "val"
    figs = ev.figures
    assert {"roc", "confusion_matrix", "reliability"} <= set(figs)
    from matplotlib.figure import Figure

    assert isinstance(figs["roc"], Figure) and figs["roc"].axes[0].images
    assert "roc_auc" in ev.headline()


def test_predict_files_and_arrays_agree(api_run: medxfer.Run, api_data: Path, tmp_path: Path) -> None:
    from medxfer.data.images import read_image

    files = sorted((api_data / "disc").glob("*.png"))[:3]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    df = api_run.predict([*map(str, files), str(bad)])
    assert list(df.columns) == ["path", "label", "prob_bar", "prob_disc", "threshold", "error"]
    assert len(df) == 4 and df["error"].iloc[3] and not df["error"].iloc[:3].any()
    proba = api_run.predict([read_image(p) for p in files])
    assert isinstance(proba, np.ndarray) and proba.shape == (3, 2)
    np.testing.assert_allclose(df[["prob_bar", "prob_disc"]].iloc[:3].to_numpy(), proba, atol=1e-6)
    one = api_run.predict(read_image(files[0]))
    np.testing.assert_allclose(one, proba[:1])
    folder = api_run.predict(api_data / "bar")
    assert len(folder) == len(list((api_data / "bar").glob("*.png")))


def test_explain_returns_heatmap_overlay_and_figure(
    api_run: medxfer.Run, api_data: Path, tmp_path: Path
) -> None:
    path = sorted((api_data / "disc").glob("*.png"))[0]
    out = tmp_path / "cam.png"
    ex = api_run.explain(path, class_name="disc", out=out)
    assert ex.label == "disc" and 0.0 <= ex.probability <= 1.0
    assert ex.heatmap.shape == (32, 32) and 0.0 <= ex.heatmap.min() and ex.heatmap.max() <= 1.0
    assert ex.overlay.dtype == np.uint8 and ex.overlay.shape[2] == 3
    assert out.is_file() and ex.figure.axes[0].get_title().startswith("disc")
    with pytest.raises(ValueError, match="unknown class"):
        api_run.explain(path, class_name="cat")


def test_export_onnx_matches_torch(api_run: medxfer.Run, tmp_path: Path) -> None:
    result = api_run.export("onnx", out=tmp_path / "m.onnx")
    assert result.path == tmp_path / "m.onnx" and result.path.is_file()
    assert result.max_abs_diff < 1e-4


def test_tune_runs_a_fast_study_in_process(tmp_path: Path) -> None:
    """``medxfer.tune`` = ``medxfer tune``: a fast study on cached features ends with exactly N trials."""
    from medxfer.features.extract import FeatureSet, save_features

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    x = rng.normal(size=(80, 4)).astype(np.float32) + 1.5 * y[:, None]
    cols = {
        "path": np.array([f"/x/{i}.png" for i in range(80)]),
        "label_name": np.array(["a", "b"])[y],
        "patient_id": np.array([f"p{i}" for i in range(80)]),
        "split": np.where(np.arange(80) % 4 == 0, "val", "train"),
        "source": np.full(80, "s"),
    }
    save_features(FeatureSet(x, y, ["a", "b"], cols, {"backbone": "synthetic"}), tmp_path / "f.npz")
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"fast": {"stages.0.lr": {"type": "float", "low": 1e-3, "high": 3e-2}}}))
    url = f"sqlite:///{tmp_path / 't.db'}"
    kw = {"fast": True, "features": tmp_path / "f.npz", "storage": url, "study": "s", "out": tmp_path / "o"}
    summary = medxfer.tune(None, 3, space=space, log=lambda m: None, **kw)
    assert summary["complete"] + summary["pruned"] == 3 and (tmp_path / "o" / "best_config.yaml").is_file()
    with pytest.raises(TypeError, match="unexpected keyword argument 'trails'"):
        medxfer.tune(None, trails=3)
