"""``costhill plot [KIND] RUN... | --sweep NAME``: the figures of stored runs."""

from __future__ import annotations

from typing import Any

import click

from .options import DATA_OPTION, STORE_OPTION, image_out

KINDS = ("costs", "regimes", "accuracy", "lr", "confusion", "misclassified", "parallel")
_SWEEP_KINDS = ("lr", "parallel")  # these read a sweep, not a list of runs


@click.command()
@click.argument("kind_and_runs", nargs=-1, metavar="[KIND] [RUN]...")
@click.option("--sweep", "sweep_name", help="Plot this sweep's runs.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    callback=image_out,
    help="Image file (.png, .pdf, .svg).",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["step", "epoch", "seconds"]),
    default="step",
    show_default=True,
    help="costs: the horizontal axis.",
)
@click.option("--log-y", is_flag=True, help="costs: a logarithmic cost axis.")
@click.option(
    "--band", is_flag=True, help="costs: each arm's mean over its seeds with a ±1 std band."
)
@DATA_OPTION
@STORE_OPTION
def plot(
    kind_and_runs: tuple[str, ...],
    sweep_name: str | None,
    out: str,
    x_axis: str,
    log_y: bool,
    band: bool,
    data_dir: str | None,
    store_path: str,
) -> None:
    """Draw a figure of stored runs. KIND is one of costs (the default), regimes, accuracy, lr,
    confusion, misclassified or parallel.

    \b
    costs          each step's cost faint, each epoch's mean bold (--band: mean ± std over
                   each arm's seeds)
    regimes        full-batch, mini-batch, stochastic: at equal epochs, equal seconds, on one
                   hill, with the step-to-step noise and path/distance of each (the article)
    accuracy       train/validation/test accuracy, the best epoch and the generalization gap
    lr             final validation accuracy against lr, per optimizer (DeepOBS; --sweep)
    confusion      the confusion matrix of one run's test predictions, per-class accuracy
    misclassified  a grid of test images one run gets wrong, true and predicted labels
    parallel       parallel coordinates of a sweep, coloured by validation accuracy (--sweep)

    \b
    Example:
        costhill plot 1 2 3 --out costs.png --x epoch
        costhill plot --sweep optimizers --band --out bands.png
        costhill plot regimes --sweep hill --out regimes.png
        costhill plot lr --sweep optimizers --out lr.png
        costhill plot confusion 3 --out confusion.png
    """
    from ..store import Store

    kind, run_ids = _kind_and_runs(kind_and_runs, sweep_name)
    with Store(store_path, read_only=True) as store:
        if sweep_name and not run_ids:
            run_ids = [r["run_id"] for r in store.sweep_runs(sweep_name)]
            if not run_ids:
                raise click.UsageError(f"--sweep {sweep_name}: no finished runs in {store_path}")
        if band and kind == "costs":
            from ..results.plots import plot_cost_bands

            runs = [store.load(r, with_params=False) for r in run_ids]
            path = plot_cost_bands(runs, out, x="epoch" if x_axis == "step" else x_axis)
        else:
            path = _draw(kind, store, run_ids, sweep_name, out, x_axis, log_y, data_dir)
    click.echo(f"wrote {path}")


def _kind_and_runs(args: tuple[str, ...], sweep: str | None) -> tuple[str, list[int]]:
    kind = args[0] if args and args[0] in KINDS else "costs"
    rest = args[1:] if args and args[0] in KINDS else args
    try:
        run_ids = [int(a) for a in rest]
    except ValueError:
        if len(rest) == 1 and not sweep:  # most often a sweep's name, given as a run
            raise click.UsageError(
                f"{rest[0]}: not a run id; a sweep is named with --sweep "
                f"(costhill plot {kind} --sweep {rest[0]})"
            ) from None
        raise click.UsageError(
            f"{' '.join(rest)}: expected run ids after the kind ({', '.join(KINDS)})"
        ) from None
    if not run_ids and not sweep:
        raise click.UsageError("name runs or --sweep NAME")
    if kind in _SWEEP_KINDS and not sweep:
        raise click.UsageError(f"plot {kind} reads a sweep: give --sweep NAME")
    return kind, run_ids


def _draw(
    kind: str,
    store: Any,
    run_ids: list[int],
    sweep: str | None,
    out: str,
    x_axis: str,
    log_y: bool,
    data_dir: str | None,
) -> Any:
    from ..results import plots

    if kind in ("costs", "accuracy"):
        runs = [store.load(r, with_params=False) for r in run_ids]
        if kind == "costs":
            return plots.plot_costs(runs, out, x=x_axis, log_y=log_y)
        return plots.plot_accuracy(runs, out)
    if kind == "regimes":
        return _regimes(store, run_ids, out, data_dir)
    if kind in ("confusion", "misclassified"):
        return _predictions(kind, store, run_ids, out, data_dir)
    if kind == "lr":
        from ..store import TRAINED

        rows = store.sweep_runs(sweep, statuses=TRAINED)
        kept = plots.lr_points([r for r in rows if r["status"] != "pruned"])
        stopped = plots.lr_points([r for r in rows if r["status"] == "pruned"])
        return plots.plot_lr_sensitivity(kept, out, pruned=stopped)
    from ..results.studies import sweep_arms

    arms, varying = sweep_arms(store, str(sweep))  # pruned ones too, drawn apart
    pruned = sum(a.pruned for a in arms)
    title = f"sweep {sweep}: {len(arms) - pruned} arms ran their course" + (
        f", {pruned} pruned" if pruned else ""
    )
    return plots.plot_parallel(arms, [k for k in varying if k != "seed"], out, title=title)


def _regimes(store: Any, run_ids: list[int], out: str, data_dir: str | None) -> Any:
    from rich.table import Table

    from ..results import plots
    from ..results.hill import compute_hill
    from ..results.regimes import regime_stats
    from .console import make_console

    runs = [store.load(r, with_params=False) for r in run_ids]
    stats = regime_stats(store, run_ids)
    with_paths = [r for r in run_ids if len(store.snapshot_index(r)) >= 2]
    hill = None
    if len(with_paths) == len(run_ids):
        hill = compute_hill(
            store, run_ids, grid=25, subset=2_000, data_dir=data_dir, with_sharpness=False
        )
    table = Table(title="the three ways down, measured")
    for column in (
        "run",
        "regime",
        "batch",
        "steps",
        "step-to-step std",
        "path / distance",
        "final train cost",
    ):
        table.add_column(column, justify="right")
    for s in stats:
        table.add_row(
            str(s.run_id),
            s.regime,
            str(s.batch_size),
            f"{s.steps:,}",
            "—" if s.step_noise is None else f"{s.step_noise:.4g}",
            "—" if s.path_ratio is None else f"{s.path_ratio:.4f}",
            "—" if s.final_cost is None else f"{s.final_cost:.4f}",
        )
    make_console().print(table)
    return plots.plot_regimes(runs, stats, hill, out)


def _predictions(kind: str, store: Any, run_ids: list[int], out: str, data_dir: str | None) -> Any:
    from ..results import plots
    from ..results.predictions import predict_test_set

    if len(run_ids) != 1:
        raise click.UsageError(f"plot {kind} draws one run")
    found = predict_test_set(store.load(run_ids[0]), data_dir=data_dir)
    if kind == "confusion":
        return plots.plot_confusion(found.confusion(), found.names, out)
    wrong = found.wrong(32)
    return plots.plot_misclassified(
        found.images[wrong], found.labels[wrong], found.predicted[wrong], found.names, out
    )


COMMANDS = [plot]
