"""The ``costhill`` command: a thin layer over the library, one module per command group.

Nothing here but argument parsing, calls into the library, and printing. Heavy imports (JAX,
Optax, matplotlib) happen inside the commands, so ``costhill --help`` is instant. Every
``CosthillError`` becomes one ``Error: ...`` line naming the flag, and exit code 2, never a
traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import CosthillError
from .options import as_flags


class CosthillGroup(click.Group):
    """A click group that reports costhill's errors as one clear line with exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CosthillError as err:
            click.echo(f"Error: {as_flags(str(err))}", err=True)
            sys.exit(2)


@click.group(cls=CosthillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costhill")
def cli() -> None:
    """costhill: where to start on the cost hill (initializer), and how to walk down it
    (optimizer; full-batch, mini-batch or stochastic descent), measured on Fashion-MNIST.

    \b
    Example:
        costhill train --preset seed          # the article's run
        costhill runs                         # what the store holds
        costhill plot 1 --out costs.png       # its cost curve
    """


def _register() -> None:
    from . import (
        catalog,
        compare,
        data,
        diagnose,
        export,
        hill,
        plot,
        predict,
        report,
        runs,
        sweep,
        train,
    )

    modules = (
        train,
        runs,
        plot,
        predict,
        hill,
        diagnose,
        report,
        sweep,
        compare,
        export,
        data,
        catalog,
    )
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()
