"""What the commands share: the common options, and how library errors name their flags.

The library names the field an error is about (``lr -1.0: ...``, ``store x.db: ...``); the CLI
prints the flag a user typed instead (``--lr -1.0: ...``), through ``FLAGS``.
"""

from __future__ import annotations

import re

import click

from ..config import DEFAULT_STORE

# Library field (or parameter) name -> the flag that sets it.
FLAGS = {
    "dataset": "--dataset",
    "data_dir": "--data",
    "validation": "--validation",
    "model": "--model",
    "hidden": "--hidden",
    "activation": "--activation",
    "init": "--init",
    "bias_init": "--bias-init",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "opt": "--opt",
    "schedule": "--schedule",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "preset": "--preset",
    "store": "--store",
    "overrides": "--set",
    "at": "--at",
    "by": "--by",
    "ray_address": "--ray",
    "tracking_uri": "--mlflow",
    "log_dir": "--tensorboard",
    "index": "--index",
    "image": "--image",
    "format": "--format",
    "cohorts": "--cohorts",
    "storage_url": "--optuna",
    "out": "--out",
}
_FIELD_AT_START = re.compile(
    r"(^|: |; )(" + "|".join(sorted(map(re.escape, FLAGS), key=len, reverse=True)) + r")(?= |:)"
)


_PLAN_SOURCE = re.compile(r"^(plan [\w.-]+|[^\s:]+\.toml)(:\d+)?: ")


def as_flags(message: str) -> str:
    """A library error message with each field that starts a clause named by its flag.

    Examples:
      >>> as_flags("flags: lr = -1.0: expected a positive number")
      'flags: --lr = -1.0: expected a positive number'
      >>> as_flags("batch_size full: too big. To fit: batch_size smaller; hidden narrower")
      '--batch-size full: too big. To fit: --batch-size smaller; --hidden narrower'
      >>> as_flags("lr-demo.toml:5: lr: must be positive")
      'lr-demo.toml:5: lr: must be positive'
    """
    if _PLAN_SOURCE.match(message):  # a plan file's keys are its own, not flags
        return message
    return _FIELD_AT_START.sub(lambda m: m.group(1) + FLAGS[m.group(2)], message)


STORE_OPTION = click.option(
    "--store",
    "store_path",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The SQLite run store.",
)
TENSORBOARD_OPTION = click.option(
    "--tensorboard",
    type=click.Path(file_okay=False),
    help="Also write TensorBoard event files under this directory (costhill[tensorboard]).",
)
DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    help="Directory holding the four IDX files (looked at first, and alone).",
)
SET_OPTION = click.option(
    "--set",
    "set_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help=(
        "Override a plan setting (epochs=1, dataset=fashion-mnist-sample, ...), or an option "
        "of its [search] or [prune] table (search.seed=3, prune.min_epochs=2); repeatable."
    ),
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, no table.")


def image_out(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A ``--out`` image checked when the command starts, so that a suffix matplotlib cannot
    write stops it before a surface is computed, not after."""
    if value is not None:
        from ..results.plots import check_image_path

        check_image_path(value)
    return value
