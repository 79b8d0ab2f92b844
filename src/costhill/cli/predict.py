"""``costhill predict``: name the class of test images (or an image file) with a stored run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from .console import make_console
from .options import DATA_OPTION, STORE_OPTION
from .runs import load_run

if TYPE_CHECKING:
    from ..records import Run


def show_predictions(
    run: Run,
    *,
    data_dir: str | None,
    indices: list[int] | None,
    count: int,
    seed: int | None,
    image: Any = None,
) -> None:
    """Print the predicted class of test images (or of ``image``) under the run's parameters."""
    from rich.table import Table

    from ..results.predictions import predict

    predictions = predict(
        run, data_dir=data_dir, indices=indices, count=count, seed=seed, image=image
    )
    table = Table(title=f"predictions of run {run.run_id}")
    for column in ("test image", "predicted", "probability", "true label", ""):
        table.add_column(column)
    for p in predictions:
        verdict = {None: "", True: "✓", False: "✗"}[p.correct]
        where = "--image" if image is not None else p.where
        table.add_row(where, p.predicted, f"{p.probability:.3f}", p.label or "—", verdict)
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
    run = load_run(store_path, run_id)
    pixels = _read_image(image, invert) if image else None
    show_predictions(
        run, data_dir=data_dir, indices=list(indices) or None, count=count, seed=seed, image=pixels
    )


COMMANDS = [predict]
