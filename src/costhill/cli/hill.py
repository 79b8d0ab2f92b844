"""``costhill hill``: the cost over a plane of parameter space with the runs' paths on it."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import HILL_PLANES
from .console import make_console
from .options import DATA_OPTION, STORE_OPTION, image_out


def parse_subset(value: str) -> int | None:
    """``all`` (None) or a count of training examples."""
    if value.strip().lower() == "all":
        return None
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a number of examples or 'all'") from None
    if size < 1:
        raise click.BadParameter(f"{value}: must be at least 1 (or 'all')")
    return size


@click.command()
@click.argument("run_ids", nargs=-1, required=True, type=int)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    callback=image_out,
    help="The PNG (an SVG is written beside it).",
)
@click.option("--plane", type=click.Choice(HILL_PLANES), default="pca", show_default=True)
@click.option("--grid", default=41, show_default=True, help="Grid points along each axis.")
@click.option(
    "--span",
    type=float,
    help="How far the grid reaches beyond the paths, as a fraction of their extent [0.25]; "
    "on a random plane, its half-width in the directions' units [1].",
)
@click.option(
    "--subset",
    default="10000",
    show_default=True,
    help="Training examples the surface is evaluated on, or 'all'.",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.10,
    show_default=True,
    help="Flag snapshots whose true cost and surface value differ by more than this fraction.",
)
@click.option("--line", is_flag=True, help="Draw 1-D interpolations instead of the plane.")
@click.option("--no-sharpness", is_flag=True, help="Do not measure the end points' sharpness.")
@click.option("--seed", default=0, show_default=True, help="Seeds random planes and probes.")
@click.option("--json", "as_json", is_flag=True, help="Also print the hill's numbers as JSON.")
@DATA_OPTION
@STORE_OPTION
def hill(
    run_ids: tuple[int, ...],
    out: str,
    plane: str,
    grid: int,
    span: float | None,
    subset: str,
    tolerance: float,
    line: bool,
    no_sharpness: bool,
    seed: int,
    as_json: bool,
    data_dir: str | None,
    store_path: str,
) -> None:
    """Draw the training cost over a plane of parameter space with each run's path on it.

    The runs need parameter snapshots (train them with --snapshots K). The figure shows how
    far it can be trusted: each axis's explained variance, each snapshot's true cost beside the
    surface at its projection (✗ where they differ by more than --tolerance), its distance off
    the plane, and each end point's sharpness (top Hessian eigenvalue and trace).

    \b
    Example:
        costhill train --optimizer adam --epochs 5 --snapshots 20
        costhill train --optimizer sgd --lr 0.1 --epochs 5 --snapshots 20
        costhill hill 1 2 --out hill.png
        costhill hill 1 2 --plane endpoints --out ends.png
        costhill hill 1 --plane random --grid 31 --out random.png
        costhill hill 1 2 --line --out line.png
    """
    from ..results import hill as hills
    from ..results.plots import plot_hill, plot_lines
    from ..store import Store

    examples = parse_subset(subset)
    with Store(store_path, create=False) as store:
        if line:
            found = hills.lines(store, list(run_ids), subset=examples, data_dir=data_dir)
            written = plot_lines(found, out)
            for each in found:
                low = min(range(len(each.costs)), key=each.costs.__getitem__)
                click.echo(
                    f"{each.label}: cost {each.costs[0]:.4f} at α={each.alphas[0]:g}, lowest "
                    f"{each.costs[low]:.4f} at α={each.alphas[low]:.2f}, "
                    f"{each.costs[-1]:.4f} at α={each.alphas[-1]:g}"
                )
        else:
            settings: dict[str, Any] = {"plane": plane, "grid": grid, "span": span}
            result = hills.compute_hill(
                store,
                list(run_ids),
                subset=examples,
                tolerance=tolerance,
                data_dir=data_dir,
                seed=seed,
                with_sharpness=not no_sharpness,
                **settings,
            )
            written = plot_hill(result, out)
            _print_hill(result)
            if as_json:
                click.echo(json.dumps(result.to_dict()))
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _print_hill(result: Any) -> None:
    from rich.table import Table

    console = make_console()
    console.print(
        f"[bold]{result.plane} plane[/] · origin {result.origin_label} · axes "
        f"{result.axis_labels[0]}, {result.axis_labels[1]} · surface on {result.subset:,} "
        "training examples"
    )
    for path in result.paths:
        table = Table(title=path.label)
        for column in ("step", "true cost", "surface at projection", "off plane", ""):
            table.add_column(column, justify="right")
        for step, true, surface, off, bad in zip(
            path.steps,
            path.true_costs,
            path.surface_costs,
            path.off_plane,
            path.disagree,
            strict=True,
        ):
            true_text = "—" if true is None else f"{true:.4f}"
            table.add_row(
                f"{step:,}", true_text, f"{surface:.4f}", f"{100 * off:.0f}%", "✗" if bad else ""
            )
        console.print(table)
        if path.sharpness:
            console.print(
                f"  sharpness at the end point ({path.sharpness.get('examples', result.subset):,} "
                f"examples): top Hessian eigenvalue {path.sharpness['top_eigenvalue']:.4g}, "
                f"trace {path.sharpness['trace']:.4g}"
            )
    for check in result.subset_check:
        console.print(
            f"subset check at ({check['a']:.3g}, {check['b']:.3g}): {check['subset']:.4f} on the "
            f"subset, {check['full']:.4f} on the whole split"
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning: {warning}[/]")


COMMANDS = [hill]
