"""One place that decides how wide tables are when output goes to a file or a pipe."""

from __future__ import annotations

from typing import Any


def make_console(*, stderr: bool = False, quiet: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, quiet=quiet)
    if not console.is_terminal:
        # Rich assumes 80 columns off a terminal, which truncates the run tables.
        console = Console(stderr=stderr, quiet=quiet, width=160)
    return console
