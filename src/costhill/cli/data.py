"""``costhill data``: where the data is, how big, whether it verifies; ``data fetch`` downloads."""

from __future__ import annotations

import click

from ..config import DATASET_NAMES
from .console import DownloadProgress, make_console
from .options import DATA_OPTION


@click.group(invoke_without_command=True)
@click.option(
    "--dataset", type=click.Choice(DATASET_NAMES), default=DATASET_NAMES[0], show_default=True
)
@DATA_OPTION
@click.pass_context
def data(ctx: click.Context, dataset: str, data_dir: str | None) -> None:
    """Show where the data was found, the split sizes and the verification.

    \b
    Example:
        costhill data
        costhill data --dataset fashion-mnist-sample
        costhill data fetch
    """
    if ctx.invoked_subcommand is not None:
        return

    from ..data import dataset_info, load

    ds = load(dataset, data_dir=data_dir, download=False)
    console = make_console()
    console.print(f"[bold]{dataset}[/]: {ds.source}")
    console.print(f"verified: {ds.verified}")
    console.print(
        f"train {len(ds.train):,} · validation {len(ds.validation):,} (default hold-out) · "
        f"test {len(ds.test):,} · pixels float32 in [0, 1]"
    )
    console.print(dataset_info(dataset).license_note)


@data.command()
@click.option(
    "--dataset",
    type=click.Choice(["fashion-mnist", "mnist"]),
    default="fashion-mnist",
    show_default=True,
)
@click.option(
    "--mirror", help="Base URL holding the four .gz files [the official one; or $COSTHILL_MIRROR]."
)
def fetch(dataset: str, mirror: str | None) -> None:
    """Download the dataset into the user cache (~/.cache/costhill/DATASET), verified.

    \b
    Example:
        costhill data fetch
        costhill data fetch --dataset mnist
    """
    from ..data import fetch as fetch_files

    with DownloadProgress() as progress:
        target = fetch_files(dataset, mirror=mirror, progress=progress)
    click.echo(f"{dataset}: verified files in {target}")


COMMANDS = [data]
