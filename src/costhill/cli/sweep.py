"""``costhill sweep``, ``costhill compare``, ``costhill export``, ``costhill plans``."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import click

from ..errors import ConfigError
from ._console import make_console
from .train import DATA_OPTION, STORE_OPTION, TENSORBOARD_OPTION

SET_OPTION = click.option(
    "--set",
    "set_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a plan setting (epochs=1, dataset=fashion-mnist-sample, ...); repeatable.",
)


@click.command()
@click.argument("plan")
@STORE_OPTION
@SET_OPTION
@DATA_OPTION
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train in this many local processes (this one alone writes the store).",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="HOST:PORT",
    help="Run each config as a task on this Ray cluster (costhill[ray]); results come back "
    "here, and only this process writes the store.",
)
@click.option(
    "--cohorts",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Train configs differing only in seed or init as one vmapped cohort: auto = plain SGD "
    "with batches of 16 or fewer, where it pays on a CPU.",
)
@click.option("--dry-run", is_flag=True, help="Check the plan and list its configs; train nothing.")
@TENSORBOARD_OPTION
def sweep(
    plan: str,
    store_path: str,
    set_pairs: tuple[str, ...],
    data_dir: str | None,
    workers: int,
    ray_address: str | None,
    cohorts: str,
    dry_run: bool,
    tensorboard: str | None,
) -> None:
    """Train every config of PLAN (a TOML file or a bundled plan's name) that the store lacks.

    Rerunning a stopped sweep resumes it: configs with a finished or diverged run are skipped.

    \b
    Example:
        costhill sweep optimizers --set epochs=2 --set dataset=fashion-mnist-sample
        costhill sweep my-plan.toml --store runs.db
        costhill sweep regimes --dry-run
        costhill sweep initializers --workers 2
        costhill sweep optimizers --ray head-node:6379
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..plans import load_plan, parse_set
    from ..store import Store
    from ..sweep import run_plan

    loaded = load_plan(plan, overrides=parse_set(set_pairs))
    console = make_console(stderr=True)
    if dry_run:
        out = make_console()
        out.print(
            f"plan {loaded.name}: {len(loaded)} configs, budget {loaded.budget.kind} "
            f"{loaded.budget.amount:g}, axes {', '.join(loaded.axes) or 'none'}"
        )
        for config in loaded.configs:
            out.print(json.dumps(config.to_dict()))
        return
    if ray_address:
        from ..sweep import check_ray_head

        check_ray_head(ray_address)  # fail before the store is even created
    store = Store(store_path)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
    )
    overall = progress.add_task(f"sweep {loaded.name}", total=len(loaded), info="")
    current = progress.add_task("run", total=1, info="", visible=False)

    def on_run_start(position: int, config: Any) -> None:
        progress.update(
            current,
            description=f"run {position + 1}",
            completed=0,
            total=config.epochs if config.max_seconds is None else None,
            visible=True,
            info=f"{config.optimizer} lr={config.lr:g} {config.init} "
            f"B={config.batch_size} seed={config.seed}",
        )

    writers: dict[int, Any] = {}

    def on_epoch(run: Any, record: Any, costs: Any) -> None:
        if tensorboard:
            from ..tensorboard import TensorBoardWriter

            if run.run_id not in writers:
                writers[run.run_id] = TensorBoardWriter(tensorboard, run)
            writers[run.run_id].epoch(run, record, costs)
        val = "—" if record.val_accuracy is None else f"{record.val_accuracy:.4f}"
        progress.update(
            current,
            completed=record.epoch,
            info=f"cost {record.mean_step_cost:.4f} · val acc {val}",
        )

    def on_run_end(position: int, run: Any) -> None:
        progress.advance(overall)
        if run is None or not tensorboard:
            return
        if run.run_id in writers:
            writers.pop(run.run_id).close()
        elif workers > 1 or ray_address:  # runs from workers or Ray come back whole
            from ..tensorboard import write_run

            write_run(run, tensorboard)

    try:
        with progress:
            report = run_plan(
                loaded,
                store,
                data_dir=data_dir,
                workers=workers,
                ray_address=ray_address,
                cohorts=cohorts,
                on_run_start=on_run_start if workers == 1 and not ray_address else None,
                on_epoch=on_epoch,
                on_run_end=on_run_end,
            )
    except KeyboardInterrupt:
        store.close()
        console.print("interrupted: finished runs are stored; run the same command to resume")
        sys.exit(130)
    store.close()
    make_console().print(
        f"sweep {loaded.name}: {report.planned} configs · {report.trained} trained · "
        f"{report.skipped} already in the store · "
        + (f"{report.elsewhere} left to another sweep running now · " if report.elsewhere else "")
        + f"{report.diverged} diverged · "
        f"{report.wall_seconds:.1f}s wall, {report.training_seconds:.1f}s in runs"
    )


def _sweep_name(plan_or_name: str | None, sweep_name: str | None) -> str:
    from ..plans import load_plan

    if sweep_name:
        return sweep_name
    if plan_or_name is None:
        raise ConfigError("name a PLAN or --sweep NAME")
    return load_plan(plan_or_name).name


@click.command()
@click.argument("plan", required=False)
@click.option("--sweep", "sweep_name", help="The sweep's name (instead of its PLAN).")
@STORE_OPTION
@click.option(
    "--by",
    default="optimizer",
    show_default=True,
    help="The axis to tune within: each of its values gets its best arm.",
)
@click.option("--target", type=float, help="Recompute time-to-target for this accuracy.")
@click.option(
    "--at",
    "at_budget",
    metavar="KIND=AMOUNT",
    help="Also show validation accuracy at an equal budget: epochs=N, examples=N, steps=N "
    "or seconds=S.",
)
@click.option("--json", "as_json", is_flag=True, help="The whole comparison as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per arm.")
def compare(
    plan: str | None,
    sweep_name: str | None,
    store_path: str,
    by: str,
    target: float | None,
    at_budget: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Compare the arms of a sweep over their seeds, tuned on validation, reported on test.

    \b
    Example:
        costhill compare optimizers
        costhill compare --sweep lr-demo --by init --target 0.85
        costhill compare optimizers --csv > arms.csv
        costhill compare regimes --by batch_size --at examples=300000
    """
    from rich.table import Table

    from ..compare import compare as run_compare
    from ..store import Store

    name = _sweep_name(plan, sweep_name)
    at = None
    if at_budget:
        kind, _, amount = at_budget.partition("=")
        try:
            at = (kind.strip(), float(amount))
        except ValueError:
            raise ConfigError(
                f"--at {at_budget!r}: expected KIND=AMOUNT, e.g. steps=1000"
            ) from None
    with Store(store_path, create=False) as store:
        result = run_compare(store, name, by=by, at=at, target=target)
    if as_json:
        click.echo(result.to_json())
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        stats = (
            "best_val",
            "final_val",
            "final_test",
            "test_at_best_val",
            "epochs_to_target",
            "steps_to_target",
            "seconds_to_target",
        )
        writer.writerow(
            [
                "arm",
                *result.varying,
                "seeds",
                "diverged",
                "reached",
                *[f"{s}_{p}" for s in stats for p in ("mean", "std", "min", "max")],
            ]
        )
        for row in result.rows:
            values = [getattr(row, s) for s in stats]
            writer.writerow(
                [
                    row.label,
                    *[row.arm.get(k) for k in result.varying],
                    len(row.seeds),
                    row.diverged,
                    row.reached,
                    *[getattr(v, p) for v in values for p in ("mean", "std", "min", "max")],
                ]
            )
        click.echo(buffer.getvalue(), nl=False)
        return
    console = make_console()
    table = Table(title=f"sweep {name} · {len(result.rows)} arms · target {result.target}")
    for column in (
        "arm",
        "seeds",
        "best val acc",
        "final val acc",
        "final test acc",
        "epochs to target",
        "seconds to target",
        "diverged",
        *([f"val acc at {result.at[0]}={result.at[1]:g}"] if result.at else []),
    ):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for row in sorted(result.rows, key=lambda r: -(r.best_val.mean or 0.0)):
        table.add_row(
            row.label,
            str(len(row.seeds)),
            row.best_val.text(),
            row.final_val.text(),
            row.final_test.text(),
            f"{row.epochs_to_target.text(1)} ({row.reached}/{len(row.seeds)})",
            row.seconds_to_target.text(2),
            str(row.diverged),
            *([row.at_budget.text()] if row.at_budget is not None else []),
        )
    console.print(table)
    tuned = Table(title=f"tuned on validation within each {by} (test reported, never used)")
    for column in ("group", "chosen arm", "best val acc", "test acc at best val", "candidates"):
        tuned.add_column(column)
    for choice in result.choices:
        tuned.add_row(
            choice.group,
            choice.chosen,
            choice.best_val.text(),
            choice.test_at_best_val.text(),
            str(choice.candidates),
        )
    console.print(tuned)
    for pair in result.paired:
        console.print(
            f"{pair.a}  vs  {pair.b}: test difference {pair.mean_difference:+.4f} over "
            f"{pair.seeds} matched seeds, p = {pair.p_value:.3g} ({pair.note})"
        )
    profile = ", ".join(
        f"τ={t:g}: {f:.2f}"
        for t, f in zip(result.profile["tau"], result.profile["fraction"], strict=True)
    )
    console.print(
        f"performance profile (fraction of arms within τ× the fastest to target): {profile}"
    )


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
    "--out", type=click.Path(dir_okay=False), help="File to write [stdout; required for parquet]."
)
@STORE_OPTION
def export(
    fmt: str,
    sweep_name: str | None,
    per_epoch: bool,
    mlflow_uri: str | None,
    experiment: str | None,
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
    """
    from ..store import Store

    with Store(store_path, create=False) as store:
        if mlflow_uri:
            from ..mlflow_export import export_to_mlflow

            sent, skipped = export_to_mlflow(
                store, mlflow_uri, sweep=sweep_name, experiment=experiment
            )
            click.echo(f"sent {sent} runs to {mlflow_uri} ({skipped} were already there)")
            return
        runs = store.sweep_runs(sweep_name) if sweep_name else store.list_runs()
        if fmt == "tensorboard":
            from ..tensorboard import write_run

            if not out:
                raise ConfigError("--format tensorboard needs --out DIR")
            for row in runs:
                write_run(store.load(row["run_id"], with_params=False), out)
            click.echo(f"wrote TensorBoard events of {len(runs)} runs under {out}")
            return
        rows = _flatten(runs)
        if per_epoch:
            by_id = {r["run_id"]: r for r in rows}
            ids = list(by_id)
            rows = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                cursor = store.db.execute(
                    f"SELECT * FROM epochs WHERE run_id IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY run_id, epoch",
                    chunk,
                )
                rows += [
                    {
                        **{
                            k: v
                            for k, v in by_id[e["run_id"]].items()
                            if k.startswith("config.") or k == "seed"
                        },
                        **dict(e),
                    }
                    for e in cursor
                ]
    _write(rows, fmt, out)


def _flatten(runs: list[dict]) -> list[dict[str, Any]]:
    flat = []
    for run in runs:
        row = {k: v for k, v in run.items() if k not in ("config", "versions", "data", "target")}
        for key, value in run["config"].items():
            row[f"config.{key}"] = json.dumps(value) if isinstance(value, dict | list) else value
        for key, value in run["versions"].items():
            row[f"version.{key}"] = value
        flat.append(row)
    return flat


def _write(rows: list[dict[str, Any]], fmt: str, out: str | None) -> None:
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(
                "--format parquet needs pyarrow: pip install 'costhill[parquet]'"
            ) from None
        if not out:
            raise ConfigError("--format parquet needs --out FILE")
        pq.write_table(pa.Table.from_pylist(rows), out)
        click.echo(f"wrote {len(rows)} rows to {out}")
        return
    if fmt == "json":
        text = json.dumps(rows, indent=1)
    else:
        buffer = io.StringIO()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if out:
        with open(out, "w", newline="") as handle:
            handle.write(text)
        click.echo(f"wrote {len(rows)} rows to {out}")
    else:
        click.echo(text, nl=False)


@click.command()
def plans() -> None:
    """List the bundled sweep plans and why each exists.

    \b
    Example:
        costhill plans
        costhill sweep initializers --dry-run
    """
    from importlib import resources

    from ..plans import bundled_plans, load_plan

    for name in bundled_plans():
        text = (resources.files("costhill") / "plans" / f"{name}.toml").read_text()
        why = " ".join(
            line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")
        )
        click.echo(f"{name} ({len(load_plan(name))} runs): {why}")


COMMANDS = [sweep, compare, export, plans]
