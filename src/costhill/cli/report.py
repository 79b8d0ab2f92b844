"""``costhill report``: one self-contained HTML file of stored runs."""

from __future__ import annotations

import click

from .options import DATA_OPTION, STORE_OPTION


@click.command()
@click.argument("run_ids", nargs=-1, type=int)
@click.option("--sweep", "sweep_name", help="Report this sweep's runs (with its compare table).")
@click.option(
    "--out", default="costhill-report.html", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--no-hill", is_flag=True, help="Leave out the cost hill (it evaluates a grid).")
@click.option("--no-predictions", is_flag=True, help="Leave out the test-set predictions.")
@DATA_OPTION
@STORE_OPTION
def report(
    run_ids: tuple[int, ...],
    sweep_name: str | None,
    out: str,
    no_hill: bool,
    no_predictions: bool,
    data_dir: str | None,
    store_path: str,
) -> None:
    """Write one HTML file (it opens with no network) of the runs: compare table, cost and
    accuracy curves, the hill with its 3-D view, the initializers' statistics, predictions.

    With neither RUN_IDS nor --sweep it reports every stored run. The store is read-only to
    it, so a sweep writing the store goes on undisturbed.

    \b
    Example:
        costhill report --sweep hill --out hill.html
        costhill report 1 2 3 --out report.html
    """
    from ..results.report import write_report
    from ..store import Store

    with Store(store_path, read_only=True) as store:
        summary = write_report(
            store,
            out,
            run_ids=list(run_ids) or None,
            sweep=sweep_name,
            data_dir=data_dir,
            with_hill=not no_hill,
            with_predictions=not no_predictions,
        )
    click.echo(
        f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB, {summary.runs} runs, "
        f"{summary.seconds:.1f}s): {', '.join(summary.sections)}"
    )


COMMANDS = [report]
