"""Every initializer: shape and dtype, its statistics against its formula, and its spec parser."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costhill.errors import ConfigError
from costhill.initializers import ALIASES, INITIALIZERS, make_initializer, parse_init

FAN_IN, FAN_OUT = 800, 400
# name -> (expected mean, expected variance) of a FAN_IN x FAN_OUT kernel.
EXPECTED = {
    "zeros": (0.0, 0.0),
    "constant:value=0.5": (0.5, 0.0),
    "normal": (0.0, 0.01**2),
    "normal:stddev=1.0": (0.0, 1.0),
    "uniform:scale=0.2": (0.1, 0.2**2 / 12),  # jax's uniform draws from [0, scale)
    "glorot_uniform": (0.0, 2 / (FAN_IN + FAN_OUT)),
    "glorot_normal": (0.0, 2 / (FAN_IN + FAN_OUT)),
    "he_uniform": (0.0, 2 / FAN_IN),
    "he_normal": (0.0, 2 / FAN_IN),
    "lecun_uniform": (0.0, 1 / FAN_IN),
    "lecun_normal": (0.0, 1 / FAN_IN),
    "orthogonal": (0.0, 1 / FAN_IN),  # orthonormal columns of length 1 over FAN_IN rows
}


def _draw(spec: str, shape=(FAN_IN, FAN_OUT)) -> np.ndarray:
    return np.asarray(make_initializer(spec)(jax.random.key(0), shape, jnp.float32))


@pytest.mark.parametrize("spec", EXPECTED)
def test_statistics_match_the_formula(spec):
    mean, variance = EXPECTED[spec]
    w = _draw(spec)
    assert abs(w.mean() - mean) < 0.02 * max(np.sqrt(variance), 1e-3) * 50
    if variance == 0:
        assert np.all(w == mean)
    else:
        assert w.var() == pytest.approx(variance, rel=0.05)


def test_truncated_normal_stays_within_its_bounds():
    w = _draw("truncated_normal:stddev=1.0,lower=-1.0,upper=1.5")
    assert w.min() >= -1.0 and w.max() <= 1.5


def test_orthogonal_columns_are_orthonormal():
    w = _draw("orthogonal")
    np.testing.assert_allclose(w.T @ w, np.eye(FAN_OUT), atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(INITIALIZERS)),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
)
def test_every_initializer_returns_the_shape_and_dtype(name, shape):
    spec = "constant:value=1" if name == "constant" else name
    w = make_initializer(spec)(jax.random.key(1), shape, jnp.float32)
    assert w.shape == shape and w.dtype == jnp.float32


@pytest.mark.parametrize("alias,name", ALIASES.items())
def test_aliases_resolve(alias, name):
    assert parse_init(alias).name == name


@pytest.mark.parametrize(
    "spec,message",
    [
        ("glorot", "unknown initializer 'glorot'; known: constant"),
        ("normal:mean=1", "normal has no option 'mean'; its options: stddev"),
        ("normal:stddev", "expected KEY=VALUE"),
        ("normal:stddev=abc", "is not a number"),
        ("constant", "constant needs value=VALUE"),
    ],
)
def test_bad_specs_name_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_init(spec)


def test_bias_init_refuses_fan_based_initializers():
    with pytest.raises(ConfigError, match="cannot initialize a bias"):
        make_initializer("he_normal", for_bias=True)
    assert make_initializer("constant:value=0.1", for_bias=True)(
        jax.random.key(0), (3,), jnp.float32
    ).tolist() == pytest.approx([0.1] * 3)
