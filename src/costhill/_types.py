"""Type aliases shared across costhill (in the manner of optax/_src/base.py)."""

from typing import Any

import jax

# A pytree of arrays: nested dicts of layer name -> {"kernel", "bias"}.
Params = Any
# An optax optimizer state: a pytree of NamedTuples.
OptState = Any
# A JAX PRNG key (typed or raw uint32[2]).
Key = jax.Array
