"""Type aliases shared across costhill, one comment each (in the manner of optax/_src/base.py).

Plain aliases, so that the lower layers (records, store) can name them without importing JAX.
"""

from typing import Any, Literal

# A pytree of arrays: nested dicts of layer name -> {"kernel", "bias"}.
Params = Any
# An optax optimizer state: a pytree of NamedTuples.
OptState = Any
# A JAX PRNG key (a typed key or raw uint32[2]); Any here so that naming it needs no JAX.
Key = Any
# Parameters flattened to "/"-joined pytree paths -> NumPy arrays: how runs store them.
FlatParams = dict[str, Any]
# A batch size as a config gives it: examples per step, or "full" for full-batch descent.
BatchSize = int | Literal["full"]
# What a stored run can be: trained to its end, stopped by a NaN or infinite cost, stopped early
# by a tuning sweep's pruner (judged hopeless on validation), stopped from outside (Ctrl-C, kill),
# or still training.
RUN_STATUSES = ("finished", "diverged", "pruned", "interrupted", "running")
