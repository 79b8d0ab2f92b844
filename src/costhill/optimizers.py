"""How to walk down the cost hill: Optax optimizers and learning-rate schedules by name.

Every optimizer that Optax exports at top level whose update needs only the gradients is here
(``polyak_sgd`` and ``lbfgs`` also need the loss value, so they are not). ``momentum`` and
``nesterov`` are ``optax.sgd`` with heavy-ball or Nesterov momentum 0.9, as they are usually meant.
``costhill optimizers`` lists each with its hyperparameters and their defaults.

Schedules take their lengths in epochs, so one spec means the same under every descent regime:
``constant``, ``cosine[:alpha=0]``, ``exponential[:rate=0.95]`` (factor per epoch),
``step[:every=10,factor=0.1]``, ``warmup_cosine[:warmup=1,alpha=0]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import optax

from .errors import ConfigError
from .specs import Scalar, lookup, parse_spec


@dataclass(frozen=True)
class OptimizerEntry:
    """An Optax factory and the defaults costhill sets on top of Optax's own."""

    factory: Callable[..., optax.GradientTransformation]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


_GRADIENT_ONLY = (
    "sgd adagrad rmsprop adam adamw nadam nadamw adamax adamaxw amsgrad adabelief adadelta "
    "adafactor adan lion lamb lars novograd radam rprop sm3 yogi fromage noisy_sgd sign_sgd "
    "optimistic_gradient_descent optimistic_adam_v2"
).split()

OPTIMIZERS: dict[str, OptimizerEntry] = {
    name: OptimizerEntry(getattr(optax, name)) for name in _GRADIENT_ONLY if hasattr(optax, name)
}
OPTIMIZERS["momentum"] = OptimizerEntry(
    optax.sgd, {"momentum": 0.9}, "optax.sgd with heavy-ball momentum"
)
OPTIMIZERS["nesterov"] = OptimizerEntry(
    optax.sgd, {"momentum": 0.9, "nesterov": True}, "optax.sgd with Nesterov momentum"
)
# Arguments that are not scalar hyperparameters (masks, dtypes, line searches, PRNG keys).
_NOT_HYPERPARAMETERS = {
    "learning_rate",
    "mask",
    "weight_decay_mask",
    "trust_ratio_mask",
    "mu_dtype",
    "accumulator_dtype",
    "dtype_momentum",
    "linesearch",
    "key",
    "seed",
}


def hyperparameters(name: str) -> dict[str, Scalar]:
    """The hyperparameters of optimizer ``name`` (besides the learning rate) and their defaults."""
    entry = _entry(name)
    params = inspect.signature(entry.factory).parameters
    found: dict[str, Scalar] = {}
    for p in params.values():
        if p.name in _NOT_HYPERPARAMETERS or p.default is inspect.Parameter.empty:
            continue
        if p.default is None or isinstance(p.default, bool | int | float):
            found[p.name] = p.default
    found.update(entry.overrides)
    return found


def is_static(value: Any) -> bool:
    """Whether a hyperparameter's value is compiled into the program even when the numeric ones
    are carried in the optimizer state (``make_optimizer(..., inject=True)``)."""
    return value is None or isinstance(value, bool | int)


def _entry(name: str) -> OptimizerEntry:
    return lookup(OPTIMIZERS, name, what="optimizer")


def check_hyperparameters(name: str, options: Mapping[str, Scalar]) -> None:
    valid = hyperparameters(name)
    for key in options:
        if key == "learning_rate" or key == "lr":
            raise ConfigError(f"opt {key}: set the learning rate with lr")
        if key not in valid:
            listed = ", ".join(f"{k}={v}" for k, v in valid.items()) or "none"
            raise ConfigError(
                f"opt {key}: {name} has no hyperparameter {key!r}; its hyperparameters: {listed}"
            )


# name -> (options and defaults, builder(lr, steps_per_epoch, total_steps, **options))
SCHEDULES: dict[str, tuple[dict[str, float], Callable[..., optax.Schedule]]] = {
    "constant": ({}, lambda lr, spe, total: optax.constant_schedule(lr)),
    "cosine": (
        {"alpha": 0.0},
        lambda lr, spe, total, alpha: optax.cosine_decay_schedule(lr, max(total, 1), alpha),
    ),
    "exponential": (
        {"rate": 0.95},
        lambda lr, spe, total, rate: optax.exponential_decay(lr, spe, rate),
    ),
    "step": (
        {"every": 10.0, "factor": 0.1},
        lambda lr, spe, total, every, factor: optax.exponential_decay(
            lr, max(int(every * spe), 1), factor, staircase=True
        ),
    ),
    "warmup_cosine": (
        {"warmup": 1.0, "alpha": 0.0},
        lambda lr, spe, total, warmup, alpha: optax.warmup_cosine_decay_schedule(
            0.0,
            lr,
            warmup_steps=min(int(warmup * spe), max(total - 1, 0)),
            decay_steps=max(total, 1),
            end_value=alpha * lr,
        ),
    ),
}


def parse_schedule(spec: str) -> tuple[str, dict[str, float]]:
    """``name[:key=value,...]`` -> (name, options with defaults filled in)."""
    name, options = parse_spec(spec, what="schedule")
    if name not in SCHEDULES:
        known = ", ".join(SCHEDULES)
        raise ConfigError(f"schedule {spec!r}: unknown schedule {name!r}; known: {known}")
    defaults, _ = SCHEDULES[name]
    for key, value in options.items():
        if key not in defaults:
            listed = ", ".join(defaults) or "none"
            raise ConfigError(f"schedule {spec!r}: {name} has no option {key!r}; options: {listed}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"schedule {spec!r}: option {key!r} must be a number")
    return name, {**defaults, **{k: float(v) for k, v in options.items()}}  # type: ignore[arg-type]


def make_schedule(
    spec: str, lr: float, *, steps_per_epoch: int, total_steps: int
) -> optax.Schedule:
    name, options = parse_schedule(spec)
    _, build = SCHEDULES[name]
    return build(lr, steps_per_epoch, total_steps, **options)


def make_optimizer(
    name: str,
    lr: float,
    options: Mapping[str, Scalar] | None = None,
    *,
    schedule: str = "constant",
    steps_per_epoch: int = 1,
    total_steps: int = 1,
    seed: int = 0,
    inject: bool = False,
) -> optax.GradientTransformation:
    """Build optimizer ``name`` with learning rate ``lr`` (or a schedule peaking at it).

    Examples:
      >>> opt = make_optimizer("adam", 1e-3, {"b1": 0.8})
      >>> import jax.numpy as jnp
      >>> state = opt.init({"w": jnp.zeros(3)})
    """
    options = dict(options or {})
    check_hyperparameters(name, options)
    if not lr > 0:
        raise ConfigError(f"lr {lr}: the learning rate must be positive")
    entry = _entry(name)
    kwargs: dict[str, Any] = {**entry.overrides, **options}
    if name == "noisy_sgd":
        kwargs["key"] = jax.random.key(seed)
    learning_rate: float | optax.Schedule = (
        lr
        if schedule == "constant"
        else make_schedule(schedule, lr, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    )
    factory = entry.factory
    if inject:
        # The learning rate and float hyperparameters become leaves of the optimizer state, so
        # one compiled epoch serves every value of them and a vmap over states can give every
        # arm of a cohort its own. Flags, Nones and integers (adafactor's are sizes that shape
        # its state) stay arguments of the program.
        static = tuple(k for k, v in {**hyperparameters(name), **kwargs}.items() if is_static(v))
        factory = optax.inject_hyperparams(entry.factory, static_args=static)
    try:
        return factory(learning_rate=learning_rate, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer {name}: {err}") from None
