"""MLflow experiment tracking through Lightning's own ``MLFlowLogger`` (``train.loggers: [..., mlflow]``).

By default the store is a local folder inside the run, ``RUN/mlruns`` (no server; browse it with
``mlflow ui --backend-store-uri RUN/mlruns``); ``train.mlflow_uri`` points elsewhere (a tracking server
or ``sqlite:///mlflow.db``). The experiment is the recipe's name, the MLflow run the run folder's name; the
resolved config is logged as parameters and every epoch's metrics as metrics. A resumed training run
continues the same MLflow run (its id is kept in ``RUN/mlflow.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medxfer.config import TrainConfig
from medxfer.io import atomic_write_text, require_extra

MLFLOW_JSON = "mlflow.json"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "s": [{"lr": 2}]}`` -> ``{"a.b": 1, "s.0.lr": 2}`` (the override key syntax)."""
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        items = ((str(i), x) for i, x in enumerate(data))
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def mlflow_logger(cfg: TrainConfig, run_dir: Path) -> Any:
    """An ``MLFlowLogger`` for this run, with the config logged as parameters (needs ``mlflow``)."""
    try:
        from lightning.pytorch.loggers import MLFlowLogger
    except ImportError as exc:  # pragma: no cover - lightning always ships it
        raise ValueError(f"train.loggers: mlflow unavailable ({exc})") from exc
    require_extra("mlflow", "mlflow", "train.loggers: mlflow")
    uri = cfg.train.mlflow_uri or (run_dir.resolve() / "mlruns").as_uri()
    if uri.startswith("file:"):
        # MLflow 3 keeps its plain-folder store in maintenance mode behind this switch; it is the
        # store that needs no server and no database, which is what a run folder wants.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    record = run_dir / MLFLOW_JSON
    run_id = json.loads(record.read_text())["run_id"] if record.is_file() else None
    logger = MLFlowLogger(experiment_name=cfg.name, run_name=run_dir.name, tracking_uri=uri, run_id=run_id)
    from medxfer.training.pieces import is_ddp_child

    if run_id is None and not is_ddp_child():  # DDP: rank 0 alone logs (Lightning's rule too)
        logger.log_hyperparams(flatten(cfg.to_dict()))
        atomic_write_text(record, json.dumps({"run_id": logger.run_id, "tracking_uri": uri}, indent=2))
    return logger
