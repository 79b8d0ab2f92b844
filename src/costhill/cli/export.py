"""``costhill export``: stored runs as CSV, JSON, Parquet, TensorBoard events, or to MLflow."""

from __future__ import annotations

import click

from .options import STORE_OPTION


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet", "tensorboard"]),
    default="csv",
    show_default=True,
    help="tensorboard writes one event directory per run under --out DIR.",
)
@click.option("--sweep", "sweep_name", help="Only this sweep's runs.")
@click.option("--epochs", "per_epoch", is_flag=True, help="One row per epoch instead of per run.")
@click.option(
    "--mlflow",
    "mlflow_uri",
    metavar="URI",
    help="Send the runs to this MLflow tracking URI instead (costhill[mlflow]).",
)
@click.option("--experiment", help="MLflow experiment name [the sweep's name, or costhill].")
@click.option(
    "--optuna",
    "optuna_url",
    metavar="STORAGE_URL",
    help="Write --sweep as an Optuna study there (e.g. sqlite:///studies.db), for "
    "optuna-dashboard.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="File to write [stdout; required for parquet]."
)
@STORE_OPTION
def export(
    fmt: str,
    sweep_name: str | None,
    per_epoch: bool,
    mlflow_uri: str | None,
    experiment: str | None,
    optuna_url: str | None,
    out: str | None,
    store_path: str,
) -> None:
    """Export run summaries (or every epoch) as CSV, JSON or Parquet.

    \b
    Example:
        costhill export --format csv --out runs.csv
        costhill export --sweep optimizers --epochs --format json
        costhill export --sweep optimizers --format tensorboard --out tb/
        costhill export --sweep optimizers --mlflow http://127.0.0.1:5000
        costhill export --sweep optimizers --optuna sqlite:///studies.db
    """
    from ..results import exports
    from ..store import TRAINED, Store

    with Store(store_path, read_only=True) as store:
        if optuna_url:
            from ..results.studies import export_study

            if not sweep_name:
                raise click.UsageError("--optuna writes one sweep: give --sweep NAME")
            trials = export_study(store, sweep_name, optuna_url)
            click.echo(f"wrote sweep {sweep_name} as an Optuna study of {trials} trials to "
                       f"{optuna_url}")  # fmt: skip
            return
        if mlflow_uri:
            from ..results.mlflow import export_to_mlflow

            sent, skipped = export_to_mlflow(
                store, mlflow_uri, sweep=sweep_name, experiment=experiment
            )
            click.echo(f"sent {sent} runs to {mlflow_uri} ({skipped} were already there)")
            return
        # A sweep's pruned runs too: an export is every trained run, its status a column.
        runs = store.sweep_runs(sweep_name, statuses=TRAINED) if sweep_name else store.list_runs()
        if fmt == "tensorboard":
            from ..results.tensorboard import write_run

            if not out:
                raise click.UsageError("--format tensorboard needs --out DIR")
            for row in runs:
                write_run(store.load(row["run_id"], with_params=False), out)
            click.echo(f"wrote TensorBoard events of {len(runs)} runs under {out}")
            return
        rows = exports.epoch_rows(store, runs) if per_epoch else exports.run_rows(runs)
    if out:
        exports.write_rows(rows, fmt, out)
        click.echo(f"wrote {len(rows)} rows to {out}")
    elif fmt == "parquet":
        raise click.UsageError("--format parquet needs --out FILE")
    else:
        click.echo(exports.as_text(rows, fmt), nl=False)


COMMANDS = [export]
