"""``python -m costhill`` runs the CLI."""

from .cli import cli

cli(prog_name="costhill")
