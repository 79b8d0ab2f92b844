"""A run's full configuration, as one frozen dataclass; presets are small TOML files that say why.

Unknown keys fail loudly (a typo must never silently train the default), and the whole config is
stored with every run. ``costhill train --preset seed --epochs 3`` shows the layering: defaults,
then the preset, then flags.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .errors import ConfigError
from .specs import Scalar
from .types import BatchSize

# The names a config may choose from, kept here (no JAX, no NumPy) so that the CLI can offer them
# without importing the modules that implement them; those modules check that they agree.
DATASET_NAMES = ("fashion-mnist", "mnist", "fashion-mnist-sample")
MODEL_NAMES = ("mlp", "logreg", "cnn")
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "gelu")
DEFAULT_STORE = "costhill-runs.db"  # the run store's file, in the working directory
# How a sweep may group runs into vmapped cohorts (``sweeps.executors.cohort_groups``).
COHORT_CHOICES = ("auto", "always", "never")
# The planes a cost hill can be drawn on (``results.hill``).
HILL_PLANES = ("pca", "endpoints", "random")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's numbers (the data's location does not; its identity does).

    Examples:
      >>> cfg = RunConfig(optimizer="sgd", lr=0.1, batch_size=1)
      >>> cfg.regime(50_000)
      'stochastic'
    """

    dataset: str = "fashion-mnist"
    validation: int | None = None  # None: the dataset's default hold-out
    split_seed: int = 0
    model: str = "mlp"
    hidden: tuple[int, ...] = (200, 100, 30)
    activation: str = "relu"
    init: str = "glorot_uniform"
    bias_init: str = "zeros"
    optimizer: str = "adam"
    lr: float = 1e-3
    opt: tuple[tuple[str, Scalar], ...] = field(default=())
    schedule: str = "constant"
    batch_size: BatchSize = 64
    drop_last: bool = False
    epochs: int = 10
    seed: int = 0
    target_accuracy: float | None = None
    stop_at_target: bool = False  # end the run at the epoch that first reaches the target
    max_seconds: float | None = None  # end the run at the epoch whose training time reaches this
    snapshots: int = 0  # keep K+1 evenly spaced parameter snapshots, step 0 included (the hill)

    def __post_init__(self) -> None:
        _check_types(self)

    def regime(self, num_train: int) -> str:
        """``full-batch``, ``stochastic`` or ``mini-batch``: the article's three ways down."""
        size = self.effective_batch_size(num_train)
        if size >= num_train:
            return "full-batch"
        return "stochastic" if size == 1 else "mini-batch"

    def effective_batch_size(self, num_train: int) -> int:
        if self.batch_size == "full":
            return num_train
        return min(int(self.batch_size), num_train)

    def steps_per_epoch(self, num_train: int) -> int:
        """Parameter updates in one epoch over ``num_train`` examples (a last partial batch is
        one more step unless ``drop_last``)."""
        size = self.effective_batch_size(num_train)
        partial = 0 if self.drop_last or num_train % size == 0 else 1
        return num_train // size + partial

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["opt"] = dict(self.opt)
        for key, value in _ADDED_LATER.items():
            if d[key] == value:  # so that configs stored before the field keep their hash
                del d[key]
        return d

    def config_hash(self) -> str:
        """A digest that is the same for equal configs, whatever the order of keys."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        # Kept on the instance (every field is immutable): a sweep asks each run's hash a dozen
        # times, and a cheap run's config costs more to serialize than to look up.
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict({**self.to_dict(), **changes}, source="override")


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
# Fields added after runs were first stored, with the default that leaves a config as it was:
# left out of ``to_dict`` at that default, so an old run's config hash (and a resumed sweep's
# "already done") is unchanged.
_ADDED_LATER: dict[str, Any] = {"snapshots": 0}


def flat_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored config's settings as a plan names them: each of the optimizer's hyperparameters
    its own ``opt.NAME``, so that a sweep over Adam's ``b1`` varies ``opt.b1`` (a number, with a
    range), not one opaque table that also tells the optimizers apart. An optimizer without that
    hyperparameter has no ``opt.NAME`` at all: the setting is conditional, as in the plan.

    Examples:
      >>> flat_settings({"optimizer": "adam", "lr": 0.001, "opt": {"b1": 0.9}})
      {'optimizer': 'adam', 'lr': 0.001, 'opt.b1': 0.9}
    """
    flat = {k: v for k, v in config.items() if k != "opt"}
    opt = config.get("opt") or {}
    flat.update((f"opt.{k}", v) for k, v in dict(opt).items())
    return flat


def default(name: str) -> Any:
    """The default value of config field ``name``.

    Examples:
      >>> default("optimizer"), default("batch_size")
      ('adam', 64)
    """
    found = FIELDS[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    return found.default_factory()  # type: ignore[misc,operator]


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Each field's check, and what it expects (the error's wording); None is allowed where the
# default is None. Checked in this order, so the first wrong field is the one named.
_CHECKS: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (("split_seed", "epochs", "seed", "snapshots"), _count, "a non-negative integer"),
    (("epochs",), lambda v: v >= 1, "at least 1"),
    (("validation",), lambda v: v is None or _count(v), "a non-negative integer"),
    (("lr",), lambda v: _number(v) and v > 0, "a positive number"),
    (
        ("batch_size",),
        lambda v: v == "full" or (_count(v) and v >= 1),
        "a positive integer or 'full'",
    ),
    (
        ("target_accuracy",),
        lambda v: v is None or (_number(v) and 0 < v <= 1),
        "a number in (0, 1]",
    ),
    (
        ("dataset", "model", "activation", "init", "bias_init", "optimizer", "schedule"),
        lambda v: isinstance(v, str),
        "a string",
    ),
    (("drop_last", "stop_at_target"), lambda v: isinstance(v, bool), "true or false"),
    (
        ("max_seconds",),
        lambda v: v is None or (_number(v) and v > 0),
        "a positive number of seconds",
    ),
    (
        ("hidden",),
        lambda v: all(_count(h) and h > 0 for h in v),
        "a list of positive integers",
    ),
)


def _check_types(cfg: RunConfig) -> None:
    for keys, valid, expected in _CHECKS:
        for key in keys:
            if not valid(getattr(cfg, key)):
                raise ConfigError(f"{key} = {getattr(cfg, key)!r}: expected {expected}")
    if cfg.stop_at_target and cfg.target_accuracy is None:
        raise ConfigError("stop_at_target = True: expected a target_accuracy to stop at")


def _opt_pairs(opt: Any, *, source: str) -> tuple[tuple[str, Any], ...]:
    """A table of optimizer hyperparameters, or the (key, value) pairs a stored config holds."""
    if not isinstance(opt, Mapping):
        try:
            opt = dict(opt)
        except (TypeError, ValueError):
            msg = f"{source}: opt {opt!r}: expected a table of hyperparameters"
            raise ConfigError(msg) from None
    return tuple(sorted(opt.items()))


def from_dict(values: Mapping[str, Any], *, source: str) -> RunConfig:
    """A ``RunConfig`` from plain data; unknown keys and bad values name ``source``."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(FIELDS)}"
        )
    kwargs = dict(values)
    if "hidden" in kwargs:
        hidden = kwargs["hidden"]
        if isinstance(hidden, str):
            try:
                hidden = [int(h) for h in hidden.split(",") if h.strip()]
            except ValueError:
                msg = f"{source}: hidden {hidden!r}: expected widths like 200,100,30"
                raise ConfigError(msg) from None
        if not isinstance(hidden, list | tuple):
            raise ConfigError(f"{source}: hidden {hidden!r}: expected a list of widths")
        kwargs["hidden"] = tuple(hidden)
    if "opt" in kwargs:
        kwargs["opt"] = _opt_pairs(kwargs["opt"], source=source)
    if isinstance(kwargs.get("lr"), int) and not isinstance(kwargs.get("lr"), bool):
        kwargs["lr"] = float(kwargs["lr"])
    try:
        return RunConfig(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def preset_names() -> list[str]:
    folder = resources.files("costhill") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_preset(name: str) -> dict[str, Any]:
    """The settings of bundled preset ``name`` (checked against ``RunConfig``'s keys)."""
    path = resources.files("costhill") / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"preset {name!r}: unknown preset; known: {', '.join(preset_names())}")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"preset {name}: {err}") from None
    from_dict(values, source=f"preset {name}")  # fail now, not after training has started
    return values
