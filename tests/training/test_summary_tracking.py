"""Model summaries (torchinfo) through the CLI, --version, and the MLflow logger option."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tiny import tiny_config
from typer.testing import CliRunner

from medxfer import __version__
from medxfer.cli import app
from medxfer.config import ConfigError, load_config
from medxfer.training.summary import backbone_summary, stage_rows
from medxfer.training.tracking import flatten

runner = CliRunner()


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"medxfer {__version__}"


def test_models_summary_counts_match_the_model() -> None:
    from medxfer.models.backbones import build_model

    args = ["models", "summary", "efficientnet_lite0", "--classes", "3", "--input-size", "64"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    model = build_model("efficientnet_lite0", 3)
    total = sum(p.numel() for p in model.parameters())
    assert f"Total params: {total:,}" in result.output
    assert "[1, 3]" in result.output and "[1, 1280, 2, 2]" in result.output  # 64 px -> 2x2 last stage
    head = 1280 * 3 + 3
    assert re.search(rf"trainable=head\s+{head:,} of {total:,} ", result.output)


def test_models_summary_mlp_head_and_errors() -> None:
    text = backbone_summary("custom_cnn", 2, 32, {"kind": "mlp", "hidden": 16, "dropout": 0.0})
    assert "[1, 16]" in text and "head" in text
    bad = runner.invoke(app, ["models", "summary", "resnet18", "--head", "mlp"])
    assert bad.exit_code == 2 and "mlp:HIDDEN" in bad.output
    unknown = runner.invoke(app, ["models", "summary", "nope"])
    assert unknown.exit_code == 2 and "resnet18" in unknown.output  # names the valid choices


def test_stage_rows_restore_requires_grad() -> None:
    from medxfer.config import StageConfig
    from medxfer.models.backbones import build_model

    model = build_model("custom_cnn", 2)
    next(model.backbone.parameters()).requires_grad_(False)
    before = [p.requires_grad for p in model.parameters()]
    rows = stage_rows(model, [StageConfig(trainable="head"), StageConfig(trainable="all")])
    head = sum(p.numel() for p in model.head.parameters())
    assert rows[0]["params"] == head and rows[1]["params"] == rows[1]["of"]
    assert [p.requires_grad for p in model.parameters()] == before


def test_summary_of_a_run_via_cli(tiny_data: Path, tmp_path: Path) -> None:
    from medxfer.training.runner import train_run

    cfg = tiny_config(tiny_data)
    cfg.stages = cfg.stages[:1]
    run = train_run(cfg, tmp_path / "run", progress=False).run_dir
    result = runner.invoke(app, ["summary", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output == (run / "summary.txt").read_text()
    assert "custom_cnn" in result.output and "bar, disc" in result.output
    missing = runner.invoke(app, ["summary", str(tmp_path)])
    assert missing.exit_code == 2 and "no model.json" in missing.output


def test_flatten_uses_override_keys() -> None:
    flat = flatten({"a": {"b": 1}, "stages": [{"lr": 2}], "specs": ["x", "y"]})
    assert flat == {"a.b": 1, "stages.0.lr": 2, "specs": ["x", "y"]}


def test_unknown_logger_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="valid: tensorboard, csv, mlflow"):
        load_config(None, ["train.loggers=[tensorboard, wandb]"])


def test_mlflow_logger_records_params_and_epoch_metrics(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train with loggers [csv, mlflow] and read the local store back with mlflow's own client."""
    mlflow = pytest.importorskip("mlflow")
    from medxfer.training.runner import train_run

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # what the logger sets for a file store
    cfg = tiny_config(tiny_data, loggers=["csv", "mlflow"])
    run = train_run(cfg, tmp_path / "run", progress=False).run_dir
    assert not (run / "tb").exists() and (run / "logs").is_dir()  # tensorboard left out as asked
    record = json.loads((run / "mlflow.json").read_text())
    assert record["tracking_uri"] == (run / "mlruns").resolve().as_uri()
    client = mlflow.tracking.MlflowClient(record["tracking_uri"])
    got = client.get_run(record["run_id"])
    assert got.info.run_name == "run" and got.info.status == "FINISHED"
    assert got.data.params["train.batch_size"] == "8" and got.data.params["stages.1.trainable"] == "all"
    history = client.get_metric_history(record["run_id"], "val_loss")
    assert len(history) == cfg.total_epochs
