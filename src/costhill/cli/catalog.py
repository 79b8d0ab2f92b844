"""``costhill optimizers``, ``costhill initializers``, ``costhill presets``: what can be named."""

from __future__ import annotations

import click

from .console import make_console


@click.command()
def optimizers() -> None:
    """List the optimizers, their hyperparameters and defaults, and the schedules.

    \b
    Example:
        costhill optimizers
        costhill train --optimizer rmsprop --lr 1e-3 --opt decay=0.95
    """
    from rich.table import Table

    from ..optimizers import OPTIMIZERS, SCHEDULES, hyperparameters

    table = Table(title="optimizers (--optimizer NAME --lr LR --opt KEY=VALUE)")
    table.add_column("name")
    table.add_column("hyperparameters (defaults)")
    for name in sorted(OPTIMIZERS):
        params = ", ".join(f"{k}={v}" for k, v in hyperparameters(name).items())
        note = OPTIMIZERS[name].summary
        table.add_row(name, params + (f"  [dim]({note})[/]" if note else ""))
    console = make_console()
    console.print(table)
    schedules = Table(title="schedules (--schedule NAME:KEY=VALUE; lengths in epochs)")
    schedules.add_column("name")
    schedules.add_column("options (defaults)")
    for name, (defaults, _) in SCHEDULES.items():
        schedules.add_row(name, ", ".join(f"{k}={v:g}" for k, v in defaults.items()) or "—")
    console.print(schedules)


@click.command()
def initializers() -> None:
    """List the initializers (from jax.nn.initializers), their options and defaults.

    \b
    Example:
        costhill initializers
        costhill train --init normal:stddev=1.0 --bias-init constant:value=0.1
    """
    from rich.table import Table

    from ..initializers import ALIASES, INITIALIZERS, NEEDS_MATRIX, options_of

    table = Table(title="initializers (--init NAME:KEY=VALUE, --bias-init NAME)")
    for column in ("name", "options (defaults)", "aliases", "for biases"):
        table.add_column(column)
    for name in INITIALIZERS:
        options = ", ".join(
            f"{k}={'required' if v is None else v}" for k, v in options_of(name).items()
        )
        aliases = ", ".join(a for a, target in ALIASES.items() if target == name)
        table.add_row(name, options or "—", aliases, "no" if name in NEEDS_MATRIX else "yes")
    make_console().print(table)


@click.command()
def presets() -> None:
    """List the bundled presets and why each exists.

    \b
    Example:
        costhill presets
        costhill train --preset seed --epochs 5
    """
    from importlib import resources

    from ..config import preset_names

    for name in preset_names():
        text = (resources.files("costhill") / "presets" / f"{name}.toml").read_text()
        why = " ".join(
            line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")
        )
        click.echo(f"{name}: {why}")


COMMANDS = [optimizers, initializers, presets]
