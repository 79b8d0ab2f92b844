"""Reading the store: ``runs``, ``show``, ``plot``, ``predict``, ``export-params``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, StoreError
from ._console import make_console
from .train import DATA_OPTION, STORE_OPTION

if TYPE_CHECKING:
    from ..training import Run


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _load(store_path: str, run_id: int, *, with_params: bool = True) -> Run:
    from ..store import Store

    with Store(store_path, create=False) as store:
        return store.load(run_id, with_params=with_params)


@click.command("runs")
@STORE_OPTION
@click.option("--status", type=click.Choice(["finished", "diverged", "interrupted", "running"]))
@click.option("--last", type=int, help="Only the last N runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run, in a list.")
def runs_command(store_path: str, status: str | None, last: int | None, as_json: bool) -> None:
    """List the stored runs.

    \b
    Example:
        costhill runs --last 10
        costhill runs --status diverged --json
    """
    from rich.table import Table

    from ..store import Store

    with Store(store_path, create=False) as store:
        rows = store.list_runs(status=status, limit=last)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} run(s) in {store_path}")
    for column in (
        "id",
        "status",
        "dataset",
        "model",
        "init",
        "optimizer",
        "lr",
        "regime",
        "batch",
        "seed",
        "epochs",
        "steps",
        "seconds",
        "val acc",
        "test acc",
    ):
        table.add_column(column, justify="right" if column not in ("status", "init") else "left")
    for r in rows:
        table.add_row(
            str(r["run_id"]),
            r["status"],
            r["dataset"],
            r["model"],
            r["init"],
            r["optimizer"],
            f"{r['lr']:g}",
            r["regime"],
            str(r["batch_size"]),
            str(r["seed"]),
            str(r["epochs"]),
            f"{r['steps']:,}",
            _fmt(r["seconds"], 1),
            _fmt(r["val_accuracy"]),
            _fmt(r["test_accuracy"]),
        )
    make_console().print(table)


@click.command()
@click.argument("run_id", type=int)
@STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Config, versions, summary and epochs.")
def show(run_id: int, store_path: str, as_json: bool) -> None:
    """Show one run: its full config, versions, summary and every epoch.

    \b
    Example:
        costhill show 1
    """
    from rich.table import Table

    run = _load(store_path, run_id, with_params=False)
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
                },
                indent=1,
            )
        )
        return
    console = make_console()
    console.print(f"[bold]run {run.run_id}[/] · {run.status} · created {run.created_at}")
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

    run = _load(store_path, run_id)
    if not run.params:
        raise StoreError(f"run {run_id}: has no stored parameters (status {run.status})")
    np.savez(out, **run.params)  # type: ignore[arg-type]
    click.echo(f"wrote {len(run.params)} arrays of run {run_id} to {out}")


@click.command()
@click.argument("run_ids", nargs=-1, required=True, type=int)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Image file (.png, .pdf, .svg)."
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["step", "epoch", "seconds"]),
    default="step",
    show_default=True,
)
@click.option("--log-y", is_flag=True, help="Logarithmic cost axis.")
@STORE_OPTION
def plot(run_ids: tuple[int, ...], out: str, x_axis: str, log_y: bool, store_path: str) -> None:
    """Draw the cost curves of stored runs: per step faint, per epoch bold.

    \b
    Example:
        costhill plot 1 2 3 --out costs.png --x epoch
    """
    from ..plots import plot_costs
    from ..store import Store

    with Store(store_path, create=False) as store:
        runs = [store.load(r, with_params=False) for r in run_ids]
    path = plot_costs(runs, out, x=x_axis, log_y=log_y)
    click.echo(f"wrote {path}")


def show_predictions(
    run: Run,
    *,
    data_dir: str | None,
    indices: list[int] | None,
    count: int,
    seed: int | None,
    image: Any = None,
) -> None:
    """Name the class of test images (or of ``image``) with the run's final parameters."""
    import jax
    import numpy as np
    from rich.table import Table

    from ..data import dataset_info, load
    from ..models import batched_logits, make_model
    from ..training import params_from_flat

    if not run.params:
        raise StoreError(f"run {run.run_id}: has no stored parameters (status {run.status})")
    cfg = run.config
    model = make_model(cfg.model, hidden=cfg.hidden, activation=cfg.activation)
    params = params_from_flat(run.params)
    names = dataset_info(cfg.dataset).class_names
    images: Any
    labels: list[int | None]
    shown: list[str]
    if image is not None:
        images, labels, shown = image[None], [None], ["--image"]
    else:
        test = load(cfg.dataset, data_dir=data_dir, validation=0).test
        if indices is None:
            indices = list(np.random.default_rng(seed).choice(len(test), count, replace=False))
        for i in indices:
            if not 0 <= i < len(test):
                raise ConfigError(f"--index {i}: the test set has indices 0..{len(test) - 1}")
        images = test.images[indices]
        labels = [int(label) for label in test.labels[indices]]
        shown = [str(i) for i in indices]
    probs = np.asarray(jax.nn.softmax(batched_logits(model, params, images), axis=-1))
    table = Table(title=f"predictions of run {run.run_id}")
    for column in ("test image", "predicted", "probability", "true label", ""):
        table.add_column(column)
    for where, p, label in zip(shown, probs, labels, strict=True):
        guess = int(np.argmax(p))
        verdict = "" if label is None else ("✓" if guess == int(label) else "✗")
        table.add_row(
            str(where),
            names[guess],
            f"{p[guess]:.3f}",
            "—" if label is None else names[int(label)],
            verdict,
        )
    make_console().print(table)


def _read_image(path: str, invert: bool) -> Any:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            gray = img.convert("L").resize((28, 28))
    except (OSError, UnidentifiedImageError) as err:
        raise ConfigError(f"--image {path}: cannot be read as an image ({err})") from None
    pixels = np.asarray(gray, dtype=np.float32) / 255.0
    return 1.0 - pixels if invert else pixels


@click.command()
@click.argument("run_id", type=int)
@click.option(
    "--index",
    "indices",
    type=int,
    multiple=True,
    help="Test image index; repeat for more [a random one].",
)
@click.option("--count", default=1, show_default=True, help="How many random test images.")
@click.option("--seed", type=int, help="Seed for picking random test images.")
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False),
    help="Classify this image file instead (resized to 28x28 grayscale).",
)
@click.option(
    "--invert", is_flag=True, help="Invert --image (Fashion-MNIST has light clothes on black)."
)
@DATA_OPTION
@STORE_OPTION
def predict(
    run_id: int,
    indices: tuple[int, ...],
    count: int,
    seed: int | None,
    image: str | None,
    invert: bool,
    data_dir: str | None,
    store_path: str,
) -> None:
    """Name the class of a test image with a stored run, with its probability and true label.

    \b
    Example:
        costhill predict 1
        costhill predict 1 --index 0 --index 42
        costhill predict 1 --image shoe.png --invert
    """
    run = _load(store_path, run_id)
    pixels = _read_image(image, invert) if image else None
    show_predictions(
        run, data_dir=data_dir, indices=list(indices) or None, count=count, seed=seed, image=pixels
    )


COMMANDS = [runs_command, show, export_params, plot, predict]
