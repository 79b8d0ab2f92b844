"""The ``costhill`` command: a thin layer over the library, one module per command group.

Nothing here but argument parsing, calls into the library, and printing. Heavy imports (JAX,
Optax, matplotlib) happen inside the commands, so ``costhill --help`` is instant. Every
``CosthillError`` becomes one ``Error: ...`` line naming the flag, and exit code 2, never a
traceback; so does an ``OSError`` about a file or folder the command line named (an ``--out``
that cannot be written).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from ..config import DEFAULT_STORE
from ..errors import CosthillError
from .options import as_flags


class CosthillGroup(click.Group):
    """A click group that reports costhill's errors as one clear line with exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["argv"] = list(args)  # to name the store in an error about it
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CosthillError as err:
            click.echo(f"Error: {as_flags(str(err))}", err=True)
            sys.exit(2)
        except sqlite3.DatabaseError as err:  # a store damaged after it was opened
            store = _store_argument(ctx.meta.get("argv", []))
            what = (
                "cannot be used now" if isinstance(err, sqlite3.OperationalError) else "is damaged"
            )
            click.echo(
                f"Error: --store {store}: {what} ({err}); nothing was written to it. "
                f"`sqlite3 {store} 'PRAGMA integrity_check'` shows what is wrong",
                err=True,
            )
            sys.exit(2)
        except OSError as err:  # a file the command line named that cannot be made or opened
            named = _argument_naming(ctx.meta.get("argv", []), err.filename)
            if named is None:
                raise  # not the user's input: a fault of costhill's, whose traceback tells
            click.echo(f"Error: {named}: {_what_went_wrong(err, named)}", err=True)
            sys.exit(2)


def _argument_naming(argv: list[str], filename: Any) -> str | None:
    """``--flag VALUE`` (or the bare VALUE, for an argument) of the command line that names
    ``filename``, a folder above it or below it (one made for it), or it but for its suffix (an
    SVG written beside a PNG); None where no argument does."""
    if not isinstance(filename, str | Path) or Path(filename) in (Path("/"), Path(".")):
        return None
    target = Path(filename)
    for i, arg in enumerate(argv):
        flag, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if (flag and not sep) or value in ("", "."):
            continue  # a flag whose value, if it takes one, is the next argument
        given = Path(value)
        names_it = given in (target, target.with_suffix("")) or given in target.parents
        if names_it or target in given.parents:
            if not flag and i and argv[i - 1].startswith("--") and "=" not in argv[i - 1]:
                flag = argv[i - 1]
            return f"{flag} {value}".strip()
    return None


def _what_went_wrong(err: OSError, named: str) -> str:
    """The OS's words, with the path they are about where it is not the one named: a folder
    that could not be made since a file holds its name says so, not just "File exists"."""
    where = str(err.filename)
    if named.endswith(where):
        return err.strerror or str(err)
    if isinstance(err, FileExistsError | NotADirectoryError) and Path(where).is_file():
        return f"{where} is a file, not a folder"
    return f"{err.strerror or err} ({where})"


def _store_argument(argv: list[str]) -> str:
    """The store a command line names (``--store X`` or ``--store=X``), else the default."""
    for i, arg in enumerate(argv):
        if arg == "--store" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--store="):
            return arg.removeprefix("--store=")
    return DEFAULT_STORE


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
