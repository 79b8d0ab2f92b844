"""Where to start on the cost hill: weight initializers by name, taken from ``jax.nn.initializers``.

A spec is ``name`` or ``name:key=value,key=value`` (``normal:stddev=1.0``).
``costhill initializers`` lists every name with its options and their defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.nn.initializers as jinit

from .errors import ConfigError
from .specs import parse_spec

# (key, shape, dtype) -> Array, as jax.nn.initializers.Initializer.
Init = Callable[..., Any]

# Each name maps to a factory that takes the options and returns an initializer.
# zeros is itself an initializer in JAX, not a factory, so it is wrapped to look like the others.
INITIALIZERS: dict[str, Callable[..., Init]] = {
    "zeros": lambda: jinit.zeros,
    "constant": jinit.constant,
    "normal": jinit.normal,
    "uniform": jinit.uniform,
    "truncated_normal": jinit.truncated_normal,
    "glorot_uniform": jinit.glorot_uniform,
    "glorot_normal": jinit.glorot_normal,
    "he_uniform": jinit.he_uniform,
    "he_normal": jinit.he_normal,
    "lecun_uniform": jinit.lecun_uniform,
    "lecun_normal": jinit.lecun_normal,
    "orthogonal": jinit.orthogonal,
}
ALIASES = {
    "xavier_uniform": "glorot_uniform",
    "xavier_normal": "glorot_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
}
# Variance-scaling and orthogonal initializers need a fan-in, which a 1-D bias has not.
NEEDS_MATRIX = {
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
}
# Options that describe array layout or dtype, which the model decides, not the user.
_LAYOUT_OPTIONS = {"in_axis", "out_axis", "batch_axis", "column_axis", "dtype"}


@dataclass(frozen=True)
class InitSpec:
    """A parsed initializer spec: canonical name and options."""

    name: str
    options: tuple[tuple[str, float], ...] = ()

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v:g}" for k, v in self.options)


def options_of(name: str) -> dict[str, Any]:
    """The user-settable options of initializer ``name`` and their defaults."""
    factory = INITIALIZERS[name]
    params = inspect.signature(factory).parameters
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in params.values()
        if p.name not in _LAYOUT_OPTIONS
    }


def parse_init(spec: str, *, what: str = "init") -> InitSpec:
    """Parse ``name[:key=value,...]``, resolving aliases and checking every option.

    Examples:
      >>> parse_init("xavier_uniform")
      InitSpec(name='glorot_uniform', options=())
      >>> str(parse_init("normal:stddev=1.0"))
      'normal:stddev=1'
    """
    name, options = parse_spec(spec, what=what)
    name = ALIASES.get(name, name)
    if name not in INITIALIZERS:
        known = ", ".join(sorted([*INITIALIZERS, *ALIASES]))
        raise ConfigError(f"{what} {spec!r}: unknown initializer {name!r}; known: {known}")
    valid = options_of(name)
    for key in options:
        if key not in valid:
            listed = ", ".join(valid) or "none"
            raise ConfigError(
                f"{what} {spec!r}: {name} has no option {key!r}; its options: {listed}"
            )
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{what} {spec!r}: option {key!r} must be a number")
    missing = [k for k, default in valid.items() if default is None and k not in options]
    if missing:
        raise ConfigError(f"{what} {spec!r}: {name} needs {', '.join(missing)}=VALUE")
    numbers = {k: float(v) for k, v in options.items() if v is not None}
    return InitSpec(name, tuple(sorted(numbers.items())))


def make_initializer(spec: InitSpec | str, *, for_bias: bool = False) -> Init:
    """Build the ``jax.nn.initializers`` initializer that ``spec`` names."""
    parsed = (
        parse_init(spec, what="bias_init" if for_bias else "init")
        if isinstance(spec, str)
        else spec
    )
    if for_bias and parsed.name in NEEDS_MATRIX:
        raise ConfigError(
            f"bias_init {parsed}: {parsed.name} needs a weight matrix's fan-in and cannot "
            "initialize a bias; use zeros, constant, normal, uniform or truncated_normal"
        )
    return INITIALIZERS[parsed.name](**dict(parsed.options))
