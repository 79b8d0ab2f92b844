"""Every small parser of costhill's inputs, in one place.

- ``parse_spec``: named things with options, ``name[:key=value,key=value]`` (initializers,
  schedules; ``parse_pair`` takes one ``key=value``, an optimizer hyperparameter);
- ``parse_set``: a plan's ``KEY=VALUE`` overrides;
- ``parse_batch_size``: ``full`` (full-batch descent) or a positive integer;
- ``parse_budget``: an equal budget to compare at, ``KIND=AMOUNT``.

Errors name the field they were given for (``what``), never a command-line flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError, CosthillError

T = TypeVar("T")

Scalar = float | int | bool | None


def parse_value(text: str, *, what: str) -> Scalar:
    """A scalar from its text: true/false, none, an int, or a float (``1e-3`` allowed)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        return float(lowered)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number, true/false or none") from None


def parse_pair(text: str, *, what: str) -> tuple[str, Scalar]:
    """``key=value`` -> (key, value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise ConfigError(f"{what} {text!r}: expected KEY=VALUE")
    return key, parse_value(value, what=f"{what} {text!r}")


def parse_spec(spec: str, *, what: str) -> tuple[str, dict[str, Scalar]]:
    """``name:key=value,key=value`` -> (name, {key: value}).

    Examples:
      >>> parse_spec("normal:stddev=1.0", what="--init")
      ('normal', {'stddev': 1.0})
    """
    name, _, rest = spec.partition(":")
    name = name.strip().lower().replace("-", "_")
    if not name:
        raise ConfigError(f"{what} {spec!r}: missing a name before ':'")
    options: dict[str, Scalar] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, value = parse_pair(part, what=what)
        if key in options:
            raise ConfigError(f"{what} {spec!r}: option {key!r} given twice")
        options[key] = value
    return name, options


def parse_set(pairs: tuple[str, ...], *, what: str = "overrides") -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; values are numbers, booleans, none, a list as TOML writes it
    (``[0, 1, 2]``, as the plan file would), or else strings.

    Examples:
      >>> parse_set(("epochs=2", "seeds=[0, 1]", "dataset=fashion-mnist-sample"))
      {'epochs': 2, 'seeds': [0, 1], 'dataset': 'fashion-mnist-sample'}
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {pair!r}: expected KEY=VALUE")
        if text.strip().startswith("["):
            result[key.strip()] = _toml_list(text, what=f"{what} {pair!r}")
            continue
        try:
            result[key.strip()] = parse_value(text, what=f"{what} {pair!r}")
        except ConfigError:
            result[key.strip()] = text.strip()
    return result


def _toml_list(text: str, *, what: str) -> list[Any]:
    import tomllib

    try:
        return list(tomllib.loads(f"value = {text.strip()}")["value"])
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{what}: not a list as TOML writes it, like [0, 1, 2] ({err})") from None


def parse_batch_size(value: str | int, *, what: str = "batch_size") -> int | str:
    """``full`` (also ``n``, ``all``) or a positive integer.

    Examples:
      >>> parse_batch_size("full"), parse_batch_size("64")
      ('full', 64)
    """
    if isinstance(value, int):
        return value
    if value.strip().lower() in ("full", "n", "all"):
        return "full"
    try:
        size = int(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r}: expected a positive integer or 'full'") from None
    if size < 1:
        raise ConfigError(f"{what} {value}: must be at least 1 (or 'full')")
    return size


def parse_budget(text: str, *, what: str = "at") -> tuple[str, float]:
    """``KIND=AMOUNT`` -> (kind, amount), e.g. ``steps=1000``; the kind is checked by its user.

    Examples:
      >>> parse_budget("examples=3e5")
      ('examples', 300000.0)
    """
    kind, _, amount = text.partition("=")
    try:
        return kind.strip(), float(amount)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected KIND=AMOUNT, e.g. steps=1000") from None


def lookup(
    registry: Mapping[str, T], name: str, *, what: str, error: type[CosthillError] = ConfigError
) -> T:
    """``registry[name]``, or an error naming ``what`` and the known names.

    Examples:
      >>> lookup({"sgd": 1}, "sgd", what="optimizer")
      1
    """
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise error(f"{what} {name!r}: unknown {what}; known: {known}") from None
