"""The one small grammar for named things with options: ``name[:key=value,key=value]``.

Used for ``--init``, ``--bias-init``, ``--schedule`` and (one pair at a time) ``--opt``.
"""

from __future__ import annotations

from .errors import ConfigError

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
