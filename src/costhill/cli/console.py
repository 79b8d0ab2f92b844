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


class DownloadProgress:
    """A rich progress bar, one row per file, for ``costhill.data``'s ``progress`` callback."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            self.bar.start()
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done)

    def __enter__(self) -> DownloadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
