"""Classical classifiers on features: grouped splits, tuned pipelines, table, skops save/load, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.features.classical import (
    comparison_markdown,
    ensure_splits,
    fit_classifier,
    load_classical,
    predict_classical,
    run_classical,
)
from medxfer.features.classifiers import CLASSIFIERS, parse_classifiers
from medxfer.features.extract import FeatureSet, save_features


def synth(n=160, d=12, seed=0, split=False, shift=2.0):
    """Two classes separated along the first 3 features; two images per patient."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n // 2), 2)  # both images of a patient share the label
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :3] += shift * y[:, None]
    groups = np.array([f"p{i // 2}" for i in range(n)])
    splits = np.where((np.arange(n) // 2) % 5 == 0, "val", "train") if split else np.full(n, "")
    cols = {
        "path": np.array([f"/x/{i}.png" for i in range(n)]),
        "label_name": np.array(["normal", "pneumonia"])[y],
        "patient_id": groups,
        "split": splits,
        "source": np.full(n, "s"),
    }
    meta = {"backbone": "efficientnet_lite0", "weights": "packaged", "input_size": 224}
    return FeatureSet(x, y, ["normal", "pneumonia"], cols, meta)


def _double(x):
    return x * 2


def test_parse_classifiers():
    assert parse_classifiers("logreg, svm") == ["logreg", "svm"]
    assert parse_classifiers("all") == list(CLASSIFIERS) == ["gboost", "knn", "logreg", "rf", "svm"]
    with pytest.raises(ValueError, match="valid: gboost, knn, logreg, rf, svm or all"):
        parse_classifiers("logreg,xgb")


def test_ensure_splits_holds_out_whole_patients():
    fs, note = ensure_splits(synth(), val=0.2, seed=0)
    assert note.startswith("auto")
    train = set(fs.groups[fs.splits == "train"])
    val = set(fs.groups[fs.splits == "val"])
    assert not train & val and len(train) + len(val) == 80
    assert 12 <= len(val) <= 20  # about a fifth of 80 patients
    given, note = ensure_splits(synth(split=True))
    assert note == "given" and (given.splits == synth(split=True).splits).all()


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_every_classifier_fits_scores_and_round_trips_through_skops(tmp_path, name):
    import skops.io as sio

    from medxfer.features.classical import MODEL_FILE, ClassicalResult, save_classical

    fs = synth(n=120, d=8, split=True)
    r = fit_classifier(fs, name, folds=2, seed=0)
    assert isinstance(r, ClassicalResult) and 0.5 <= r.cv_score <= 1.0
    assert set(r.params) == set(CLASSIFIERS.get(name).grid)
    val = r.metrics["val"]
    assert val["n"] == int((fs.splits == "val").sum())
    assert val["roc_auc"] > 0.85  # shift 2 sigma on 3 features: easy
    save_classical(r, fs, tmp_path, "given", {name: r.metrics})
    assert (tmp_path / MODEL_FILE).is_file()
    pipe, info = load_classical(tmp_path)
    x = fs.features[:7]
    np.testing.assert_allclose(pipe.predict_proba(x), r.pipeline.predict_proba(x))
    proba = predict_classical(tmp_path, x)
    assert proba.shape == (7, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert info["classifier"] == name and info["class_names"] == ["normal", "pneumonia"]
    assert sio.get_untrusted_types(data=(tmp_path / MODEL_FILE).read_bytes()) is not None


def test_run_classical_writes_table_plot_and_best(tmp_path):
    fs = synth(n=200, d=10)
    lines = []
    results = run_classical(fs, ["logreg", "knn"], tmp_path / "out", folds=3, log=lines.append)
    assert [r.name for r in results] == ["logreg", "knn"] and len(lines) == 2
    out = tmp_path / "out"
    for f in ("comparison.csv", "comparison.md", "comparison.png", "model.skops", "classical.json"):
        assert (out / f).is_file(), f
    csv = (out / "comparison.csv").read_text().splitlines()
    assert csv[0].startswith("classifier,cv_auc,val_auc,val_balanced_acc,val_macro_f1") and len(csv) == 3
    info = json.loads((out / "classical.json").read_text())
    best = max(results, key=lambda r: r.metrics["val"]["roc_auc"])
    assert info["classifier"] == best.name
    assert info["metrics"]["val"]["roc_auc"] == pytest.approx(best.metrics["val"]["roc_auc"])
    assert info["feature_source"]["backbone"] == "efficientnet_lite0"
    assert info["splits"].startswith("auto") and info["num_features"] == 10
    assert set(info["all_metrics"]) == {"logreg", "knn"}


def test_markdown_table():
    md = comparison_markdown([{"a": 0.123456, "b": None, "c": "x"}])
    assert md.splitlines() == ["| a | b | c |", "|---|---|---|", "| 0.1235 |  | x |"]


def test_load_refuses_untrusted_types(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = Pipeline([("f", FunctionTransformer(_double))]).fit(np.zeros((2, 2)))
    (tmp_path / "model.skops").write_bytes(sio.dumps(pipe))
    (tmp_path / "classical.json").write_text("{}")
    with pytest.raises(ValueError, match="untrusted"):
        load_classical(tmp_path)
    with pytest.raises(FileNotFoundError, match="classical"):
        load_classical(tmp_path / "missing")


def test_predict_checks_feature_width(tmp_path):
    run_classical(synth(n=80, d=6), ["logreg"], tmp_path, folds=2, log=lambda s: None)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        predict_classical(tmp_path, np.zeros((3, 5), np.float32))


def test_classical_command(tmp_path):
    save_features(synth(n=120, d=6), tmp_path / "f.npz")
    args = [
        "classical",
        "--features",
        str(tmp_path / "f.npz"),
        "--classifiers",
        "logreg",
        "--out",
        str(tmp_path / "o"),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "| logreg |" in r.output and (tmp_path / "o" / "model.skops").is_file()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "--overwrite" in r.output
    bad = [
        "classical",
        "--features",
        str(tmp_path / "f.npz"),
        "--classifiers",
        "xgb",
        "--out",
        str(tmp_path / "p"),
    ]
    r = CliRunner().invoke(app, bad)
    assert r.exit_code == 2 and "logreg" in r.output


def synth3(n=180, d=8, seed=0):
    """Three classes, each shifted along its own feature; two images per patient."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 3, n // 2), 2)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[np.arange(n), y] += 2.5
    cols = {
        "path": np.array([f"/x/{i}.png" for i in range(n)]),
        "label_name": np.array(["a", "b", "c"])[y],
        "patient_id": np.array([f"p{i // 2}" for i in range(n)]),
        "split": np.where((np.arange(n) // 2) % 5 == 0, "val", "train"),
        "source": np.full(n, "s"),
    }
    return FeatureSet(x, y, ["a", "b", "c"], cols, {"backbone": "synthetic"})


def test_three_class_svm_gets_a_cv_auc():
    """SVC has no predict_proba during the search: its CV AUC comes from decision_function (was NaN)."""
    r = fit_classifier(synth3(), "svm", folds=2, seed=0)
    assert np.isfinite(r.cv_score) and r.cv_score > 0.85
    assert r.metrics["val"]["roc_auc"] > 0.85


def test_cv_auc_is_the_evaluation_auc():
    """For an estimator with probabilities the scorer is the macro one-vs-rest AUC of evaluation."""
    from sklearn.linear_model import LogisticRegression

    from medxfer.evaluate.metrics import roc_auc
    from medxfer.features.classical import auc_scorer

    fs = synth3()
    clf = LogisticRegression(max_iter=500).fit(fs.features[:120], fs.labels[:120])
    x, y = fs.features[120:], fs.labels[120:]
    assert auc_scorer(clf, x, y) == pytest.approx(roc_auc(y, clf.predict_proba(x)), abs=1e-12)
    # a class the fold's model never saw gets a constant column, not a shifted one
    two = LogisticRegression(max_iter=500).fit(fs.features[fs.labels < 2], fs.labels[fs.labels < 2])
    from medxfer.evaluate.metrics import roc_auc_binary

    p2 = two.predict_proba(x)
    expected = np.mean([roc_auc_binary(y == 0, p2[:, 0]), roc_auc_binary(y == 1, p2[:, 1]), 0.5])
    assert auc_scorer(two, x, y) == pytest.approx(expected, abs=1e-12)
