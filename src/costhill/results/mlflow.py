"""Stored runs to MLflow, through the optional costhill[mlflow] (mlflow-skinny).

    costhill export --mlflow http://127.0.0.1:5000 --sweep optimizers

One MLflow run per stored run, in an experiment named after the sweep (or "costhill"): the config
as parameters, every epoch's costs, accuracies and seconds as metrics sent in batches (MLflow takes
at most 1,000 metrics a call), and the costhill run id, status, regime and versions as tags. A run
already exported to that experiment (same costhill run id tag) is skipped, so exporting twice
duplicates nothing.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..errors import ConfigError
from ..store import EPOCH_COLUMNS, TRAINED, Store

METRICS_PER_CALL = 1000
PARAMS_PER_CALL = 100
RUN_ID_TAG = "costhill.run_id"


def export_to_mlflow(
    store: Store, tracking_uri: str, *, sweep: str | None = None, experiment: str | None = None
) -> tuple[int, int]:
    """Export the store's runs (or a sweep's); returns (exported, skipped as already there)."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("tracking_uri needs MLflow: pip install 'costhill[mlflow]'") from None
    # MLflow retries an unreachable server with backoff for minutes; fail in seconds instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    client = MlflowClient(tracking_uri=tracking_uri)
    name = experiment or sweep or "costhill"
    try:
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
        present = {
            run.data.tags.get(RUN_ID_TAG)
            for run in client.search_runs([experiment_id], max_results=50_000)
        }
    except Exception as err:  # MLflow raises many kinds for a bad or unreachable URI
        raise ConfigError(f"tracking_uri {tracking_uri}: {type(err).__name__}: {err}") from None
    rows = store.sweep_runs(sweep, statuses=TRAINED) if sweep else store.list_runs()  # pruned too
    exported = skipped = 0
    for row in rows:
        if str(row["run_id"]) in present:
            skipped += 1
            continue
        run = store.load(row["run_id"], with_params=False)
        started_ms = int(time.time() * 1000)
        created = client.create_run(
            experiment_id,
            run_name=f"run {run.run_id}",
            tags={
                RUN_ID_TAG: str(run.run_id),
                "status": run.status,
                "regime": run.regime,
                "versions": json.dumps(run.versions),
            },
        )
        mlflow_id = created.info.run_id
        params = [Param(k, _text(v)) for k, v in run.config.to_dict().items()]
        metrics = [
            Metric(key, float(value), started_ms, record.epoch)
            for record in run.epochs
            for key, value in _epoch_metrics(record).items()
            if value is not None
        ]
        for start in range(0, len(params), PARAMS_PER_CALL):
            client.log_batch(mlflow_id, params=params[start : start + PARAMS_PER_CALL])
        for start in range(0, len(metrics), METRICS_PER_CALL):
            client.log_batch(mlflow_id, metrics=metrics[start : start + METRICS_PER_CALL])
        client.log_batch(mlflow_id, tags=[RunTag("config_hash", row["config_hash"])])
        client.set_terminated(mlflow_id, "FINISHED" if run.status == "finished" else "FAILED")
        exported += 1
    return exported, skipped


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list | tuple) else str(value)


def _epoch_metrics(record: Any) -> dict[str, float | None]:
    """The stored per-epoch metrics, less the counters MLflow keeps as its step."""
    values = {
        name: getattr(record, name) for name in EPOCH_COLUMNS if name not in ("epoch", "steps")
    }
    return {k: v for k, v in values.items() if v is None or v == v}  # drop NaN (diverged)
