"""Reading the store: ``runs``, ``show``, ``export-params``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import StoreError
from ..types import RUN_STATUSES
from .console import make_console
from .options import STORE_OPTION

if TYPE_CHECKING:
    from ..records import Run


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def load_run(store_path: str, run_id: int, *, with_params: bool = True) -> Run:
    from ..store import Store

    with Store(store_path, read_only=True) as store:
        return store.load(run_id, with_params=with_params)


RICH_ROWS = 200  # above this many runs, `costhill runs` prints a plain aligned table


def _plain_table(title: str, headers: list[str], cells: list[list[str]], left: tuple) -> str:
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if h in left else v.rjust(w)
            for v, w, h in zip(values, widths, headers, strict=True)
        )

    return "\n".join([title, line(headers), *(line(row) for row in cells)])


@click.command("runs")
@STORE_OPTION
@click.option("--status", type=click.Choice(RUN_STATUSES))
@click.option("--sweep", "sweep_name", help="Only the runs of this sweep's configs.")
@click.option("--last", type=click.IntRange(min=1), help="Only the last N runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run, in a list.")
def runs_command(
    store_path: str, status: str | None, sweep_name: str | None, last: int | None, as_json: bool
) -> None:
    """List the stored runs.

    \b
    Example:
        costhill runs --last 10
        costhill runs --status diverged --json
        costhill runs --sweep optimizers-tuned --status pruned
    """
    from rich.table import Table

    from ..store import Store

    with Store(store_path, read_only=True) as store:
        rows = store.list_runs(status=status, limit=last, sweep=sweep_name)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from ..results.exports import run_table

    headers, cells = run_table(rows)
    left = ("status", "init")
    if len(cells) > RICH_ROWS:  # rich measures every cell: ~2 ms a row, seconds for thousands
        click.echo(_plain_table(f"{len(rows)} run(s) in {store_path}", headers, cells, left))
        return
    table = Table(title=f"{len(rows)} run(s) in {store_path}")
    for column in headers:
        table.add_column(column, justify="left" if column in left else "right")
    for row in cells:
        table.add_row(*row)
    make_console().print(table)


@click.command()
@click.argument("run_id", type=int)
@STORE_OPTION
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Config, versions, summary, epochs and, for a pruned run, what pruned it (pruned_by).",
)
def show(run_id: int, store_path: str, as_json: bool) -> None:
    """Show one run: its full config, versions, summary and every epoch.

    \b
    Example:
        costhill show 1
    """
    from rich.table import Table

    from ..store import Store

    with Store(store_path, read_only=True) as store:
        run = store.load(run_id, with_params=False)
        snapshots = store.snapshot_index(run_id)
        pruners = _pruners(store, run) if run.status == "pruned" else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    **run.summary(),
                    "config": run.config.to_dict(),
                    "versions": run.versions,
                    "data": run.data,
                    "created_at": run.created_at,
                    "epochs_detail": [vars(e) for e in run.epochs],
                    "snapshots": snapshots,
                    "pruned_by": None
                    if pruners is None
                    else [
                        {"sweep": sweep, **(pruning._asdict() if pruning else {})}
                        for sweep, pruning in pruners
                    ],
                },
                indent=1,
            )
        )
        return
    console = make_console()
    console.print(f"[bold]run {run.run_id}[/] · {run.status} · created {run.created_at}")
    if pruners is not None:
        console.print(_pruned_words(pruners, run))
    console.print("config: " + json.dumps(run.config.to_dict()))
    console.print("data: " + json.dumps(run.data))
    console.print("versions: " + json.dumps(run.versions))
    table = Table()
    for column in (
        "epoch",
        "steps",
        "step cost",
        "train cost",
        "train acc",
        "val cost",
        "val acc",
        "test cost",
        "test acc",
        "seconds",
    ):
        table.add_column(column, justify="right")
    for e in run.epochs:
        table.add_row(
            str(e.epoch),
            f"{e.steps:,}",
            _fmt(e.mean_step_cost),
            _fmt(e.train_cost),
            _fmt(e.train_accuracy),
            _fmt(e.val_cost),
            _fmt(e.val_accuracy),
            _fmt(e.test_cost),
            _fmt(e.test_accuracy),
            _fmt(e.seconds, 2),
        )
    console.print(table)
    if snapshots:
        size = sum(s["bytes"] for s in snapshots)
        console.print(
            f"{len(snapshots)} parameter snapshots ({size / 1e6:.1f} MB stored) at steps "
            + ", ".join(f"{s['step']:,} (cost {_fmt(s['train_cost'])})" for s in snapshots)
        )


@click.command("export-params")
@click.argument("run_id", type=int)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="The .npz file to write."
)
@STORE_OPTION
def export_params(run_id: int, out: str, store_path: str) -> None:
    """Write a run's final parameters as a plain .npz (keys: '/'-joined pytree paths).

    \b
    Example:
        costhill export-params 1 --out seed.npz
        python -c "import numpy; print(list(numpy.load('seed.npz')))"
    """
    import numpy as np

    run = load_run(store_path, run_id)
    if not run.params:
        raise StoreError(f"run {run_id}: has no stored parameters (status {run.status})")
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # as every other --out does
    np.savez(out, **run.params)  # type: ignore[arg-type]
    click.echo(f"wrote {len(run.params)} arrays of run {run_id} to {out}")


COMMANDS = [runs_command, show, export_params]


def _pruners(store: Any, run: Any) -> list[tuple[str, Any]]:
    """The sweeps that hold a pruned run's config, each with what it pruned by (None where the
    store is from before version 4, which kept no word of it)."""
    return [(s, store.sweep_pruning(s)) for s in store.sweeps_of(run.config.config_hash())]


def _pruned_words(pruners: list[tuple[str, Any]], run: Any) -> str:
    """Who stopped a pruned run, and when: ``pruned after epoch 2 by asha on validation accuracy
    (sweep t); never compared or chosen``."""
    from ..results.compare import pruned_by

    by = " and ".join(f"{pruned_by(pruning)} (sweep {s})" for s, pruning in pruners)
    epoch = run.epochs[-1].epoch if run.epochs else 0
    return f"pruned after epoch {epoch} by {by or 'a tuning sweep'}; never compared or chosen"
