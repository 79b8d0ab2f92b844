"""Stored runs as flat rows: CSV, JSON or Parquet, one row per run or per epoch.

    costhill export --sweep optimizers --epochs --format csv --out epochs.csv

A run's row holds its summary columns, its config as ``config.KEY`` and its versions as
``version.KEY``; an epoch's row holds the epoch's metrics beside the run's id, seed and config.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store import EPOCH_COLUMNS, Store

FORMATS = ("csv", "json", "parquet")
# The runs table as `costhill runs` and the report show it: header, summary column, format.
RUN_TABLE = (
    ("id", "run_id", "{}"),
    ("status", "status", "{}"),
    ("dataset", "dataset", "{}"),
    ("model", "model", "{}"),
    ("init", "init", "{}"),
    ("optimizer", "optimizer", "{}"),
    ("lr", "lr", "{:g}"),
    ("regime", "regime", "{}"),
    ("batch", "batch_size", "{}"),
    ("seed", "seed", "{}"),
    ("epochs", "epochs", "{}"),
    ("steps", "steps", "{:,}"),
    ("seconds", "seconds", "{:.1f}"),
    ("val acc", "val_accuracy", "{:.4f}"),
    ("test acc", "test_accuracy", "{:.4f}"),
)


def run_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The runs table's headers and its cells, formatted (a missing value is a dash)."""
    headers = [header for header, _, _ in RUN_TABLE]
    cells = [
        ["—" if row[key] is None else fmt.format(row[key]) for _, key, fmt in RUN_TABLE]
        for row in rows
    ]
    return headers, cells


def run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per stored run (``Store.list_runs`` or ``Store.sweep_runs`` rows)."""
    flat = []
    for run in runs:
        row = {k: v for k, v in run.items() if k not in ("config", "versions", "data", "target")}
        for key, value in run["config"].items():
            row[f"config.{key}"] = json.dumps(value) if isinstance(value, dict | list) else value
        for key, value in run["versions"].items():
            row[f"version.{key}"] = value
        flat.append(row)
    return flat


def epoch_rows(store: Store, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per stored epoch of ``runs``: the run's seed and config, then the epoch."""
    by_id = {r["run_id"]: r for r in run_rows(runs)}
    rows = []
    for values in store.epoch_rows(list(by_id)):
        run = by_id[values[0]]
        kept = {k: v for k, v in run.items() if k.startswith("config.") or k == "seed"}
        rows.append(
            {**kept, "run_id": values[0], **dict(zip(EPOCH_COLUMNS, values[1:], strict=True))}
        )
    return rows


def as_text(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as CSV (every column any row has) or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt != "csv":
        raise ConfigError(f"format {fmt!r}: as text, expected csv or json")
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_rows(rows: list[dict[str, Any]], fmt: str, out: str | Path) -> Path:
    """Write ``rows`` to ``out`` as CSV, JSON or Parquet (costhill[parquet]), making its folder
    as the figures and the report do."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(
                "format parquet needs pyarrow: pip install 'costhill[parquet]'"
            ) from None
        pq.write_table(pa.Table.from_pylist(rows), out)
        return out
    with open(out, "w", newline="") as handle:
        handle.write(as_text(rows, fmt))
    return out
