"""How sharp a minimum is: the Hessian's top eigenvalue and its trace, from Hessian-vector products.

    costhill hill 3 4 --out hill.png        # measures both at each run's end point, and stores them

Power iteration on Hessian-vector products gives the eigenvalue of largest magnitude (Keskar et
al. 2017 use it to compare large- and small-batch minima); Hutchinson's estimator
``E[vᵀHv]`` over Rademacher vectors gives the trace (Hutchinson 1990; PyHessian, Yao et al. 2020).
Neither forms the Hessian: each step is one forward-over-reverse product, ``jax.jvp`` of
``jax.grad``. These functions take any scalar loss of a parameter pytree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..types import Key, Params


def _flat_hvp(loss: Callable[[Params], Any], params: Params) -> tuple[Callable[[Any], Any], int]:
    import jax
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params)

    def grad_flat(vector: Any) -> Any:
        return ravel_pytree(jax.grad(loss)(unravel(vector)))[0]

    @jax.jit
    def hvp(direction: Any) -> Any:
        return jax.jvp(grad_flat, (flat,), (direction,))[1]

    return hvp, int(flat.shape[0])


def top_eigenvalue(
    loss: Callable[[Params], Any],
    params: Params,
    *,
    key: Key,
    iterations: int = 100,
    tolerance: float = 1e-4,
) -> tuple[float, int]:
    """The Hessian eigenvalue of largest magnitude at ``params``, and the iterations it took.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> loss = lambda p: 0.5 * (3.0 * p["w"][0] ** 2 + p["w"][1] ** 2)
      >>> value, _ = top_eigenvalue(loss, {"w": jnp.ones(2)}, key=jax.random.key(0))
      >>> round(value, 4)
      3.0
    """
    import jax
    import jax.numpy as jnp

    hvp, size = _flat_hvp(loss, params)
    vector = jax.random.normal(key, (size,), jnp.float32)
    vector = vector / jnp.linalg.norm(vector)
    value = 0.0
    for done in range(1, iterations + 1):
        product = hvp(vector)
        estimate = float(vector @ product)
        norm = float(jnp.linalg.norm(product))
        if norm == 0.0 or not np.isfinite(norm):
            return estimate, done
        vector = product / norm
        if done > 1 and abs(estimate - value) <= tolerance * max(abs(estimate), 1e-12):
            return estimate, done
        value = estimate
    return value, iterations


def hessian_trace(
    loss: Callable[[Params], Any], params: Params, *, key: Key, probes: int = 50
) -> float:
    """Hutchinson's estimate of the Hessian's trace at ``params`` over ``probes`` Rademacher
    vectors (unbiased; its error shrinks as one over the square root of ``probes``)."""
    import jax
    import jax.numpy as jnp

    hvp, size = _flat_hvp(loss, params)
    keys = jax.random.split(key, probes)
    total = 0.0
    for probe_key in keys:
        vector = jax.random.rademacher(probe_key, (size,), jnp.float32)
        total += float(vector @ hvp(vector))
    return total / probes


def sharpness(
    loss: Callable[[Params], Any],
    params: Params,
    *,
    key: Key,
    iterations: int = 100,
    probes: int = 50,
) -> dict[str, Any]:
    """Both measures at ``params``, as the store keeps them."""
    import jax

    started = time.perf_counter()
    eigen_key, trace_key = jax.random.split(key)
    value, used = top_eigenvalue(loss, params, key=eigen_key, iterations=iterations)
    trace = hessian_trace(loss, params, key=trace_key, probes=probes)
    return {
        "top_eigenvalue": value,
        "trace": trace,
        "iterations": used,
        "probes": probes,
        "seconds": time.perf_counter() - started,
    }
