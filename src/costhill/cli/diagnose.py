"""``costhill diagnose``: each initializer's layers at step 0 and after some training steps."""

from __future__ import annotations

from typing import Any

import click

from ..config import ACTIVATION_NAMES, MODEL_NAMES, default
from .console import make_console
from .options import DATA_OPTION, image_out


@click.command()
@click.option("--init", "inits", multiple=True, required=True, help="An initializer; repeat.")
@click.option(
    "--model", type=click.Choice(MODEL_NAMES), default=default("model"), show_default=True
)
@click.option("--hidden", help=f"Hidden widths [{','.join(map(str, default('hidden')))}].")
@click.option(
    "--activation",
    type=click.Choice(ACTIVATION_NAMES),
    default=default("activation"),
    show_default=True,
)
@click.option("--optimizer", default=default("optimizer"), show_default=True)
@click.option("--lr", type=float, default=default("lr"), show_default=True)
@click.option("--batch-size", type=int, default=default("batch_size"), show_default=True)
@click.option("--steps", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--dataset", default="fashion-mnist-sample", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    callback=image_out,
    help="Also draw the statistics (PNG).",
)
@DATA_OPTION
def diagnose(
    inits: tuple[str, ...], steps: int, out: str | None, data_dir: str | None, **settings: Any
) -> None:
    """Show, per layer, what each initializer starts from and where N training steps take it.

    Activation mean and std, the saturated fraction (tanh, sigmoid), dead ReLUs, the gradient's
    std, the update-to-parameter ratio (log10; about -3 is healthy), identical hidden units, and
    the weights' std beside the one Glorot's or He's variance argument prescribes.

    \b
    Example:
        costhill diagnose --init zeros --init normal:stddev=1.0 --init he_normal
        costhill diagnose --init glorot_uniform --activation tanh --steps 200 --out d.png
    """
    from ..config import from_dict
    from ..results.diagnostics import diagnose as measure
    from ..results.diagnostics import diagnosis_batch, first_update, initial_params

    hidden = settings.pop("hidden")
    values = {k: v for k, v in settings.items() if v is not None}
    if hidden:
        values["hidden"] = hidden
    found = []
    for init in inits:
        config = from_dict({**values, "init": init, "epochs": 1}, source="flags")
        images, labels = diagnosis_batch(config, data_dir)
        start = initial_params(config)
        update = first_update(config, start, images, labels)
        found.append(measure(config, start, images, labels, step=0, update=update))
        if steps:
            found.append(_after_steps(config, steps, images, labels, data_dir))
    _print(found)
    if out:
        from ..results.plots import plot_diagnostics

        click.echo(f"wrote {plot_diagnostics(found, out)}")


def _after_steps(config: Any, steps: int, images: Any, labels: Any, data_dir: str | None) -> Any:
    """Train exactly ``steps`` steps (one epoch over steps × batch examples, a snapshot after
    each step), then measure; the update is the last step's change."""
    from ..data import Dataset, Split, load_for
    from ..engine import train
    from ..records import unflatten_params
    from ..results.diagnostics import diagnose as measure

    data = load_for(config, data_dir=data_dir)
    size = min(steps * config.batch_size, len(data.train))
    cut = Dataset(
        data.name,
        Split(data.train.images[:size], data.train.labels[:size]),
        data.validation,
        data.test,
        data.source,
        data.verified,
        data.class_names,
    )
    run = train(config.replace(snapshots=steps, drop_last=True), data=cut)
    last, before = run.snapshots[-1], run.snapshots[-2]
    update = {k: last.params[k] - before.params[k] for k in last.params}
    params = unflatten_params(last.params)
    return measure(config, params, images, labels, step=last.step, update=unflatten_params(update))


def _print(found: list[Any]) -> None:
    from rich.table import Table

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "—" if value is None else format(value, spec)

    table = Table(title="initializer diagnostics (a batch of 1,000 training examples)")
    for column in (
        "init",
        "step",
        "cost",
        "layer",
        "act mean",
        "act std",
        "saturated",
        "dead",
        "grad std",
        "log10 update/param",
        "identical units",
        "weight std",
        "Glorot/He std",
    ):
        table.add_column(column, justify="left" if column in ("init", "layer") else "right")
    for d in found:
        for layer in d.layers:
            table.add_row(
                d.init,
                str(d.step),
                f"{d.cost:.4f}",
                layer.name,
                fmt(layer.activation_mean),
                fmt(layer.activation_std),
                fmt(layer.saturated, ".1%"),
                fmt(layer.dead, ".1%"),
                fmt(layer.gradient_std, ".2e"),
                fmt(layer.log10_update_ratio, ".2f"),
                f"{layer.identical_units}/{layer.units}" if layer.identical_units > 1 else "—",
                fmt(layer.weight_std, ".4f"),
                fmt(layer.predicted_std, ".4f"),
            )
    make_console().print(table)


COMMANDS = [diagnose]
