"""The first layer's two matrix products of a batch-64 step, alone, as XLA compiles them for a
costhill epoch (``costhill.engine.cpu_tuning.epoch_compiler_options``), beside NumPy's OpenBLAS
at the same shapes: where the mini-batch epoch's time against the matmul limit goes.

    python -m bench.products

Each XLA product runs 2,000 times inside one compiled loop; the table gives the best of 5 loops,
in µs a product and GFLOP/s, beside the float32 matmul peak measured in the same run (NumPy,
2048x2048). The NumPy column is the best of 5 timings of up to 2,000 calls (``bench.limits``), a
bound on what handing a product to OpenBLAS could give. The 192-output row is not a product of
the seed MLP: it shows how the time of the forward product depends on the layer's width.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .limits import matmul_readings

REPEATS, LOOPS = 2000, 5


class Product(NamedTuple):
    name: str
    shape: tuple[int, int, int]  # (m, k, n) of the product as NumPy computes it
    compute: Callable[[Any], Any]  # the product as the epoch writes it, shifted by a scalar


def products() -> list[Product]:
    import jax

    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (64, 784))  # a batch of images
    delta = jax.random.normal(keys[1], (64, 200))  # the first layer's backpropagated error
    weights = jax.random.normal(keys[2], (784, 200))
    narrower = weights[:, :192]  # sliced here, so that no timed loop copies it
    return [
        Product("forward x·W (64×784 · 784×200)", (64, 784, 200), lambda c: (x + c) @ weights),
        Product(
            "the same with 192 outputs (64×784 · 784×192)",
            (64, 784, 192),
            lambda c: (x + c) @ narrower,
        ),
        Product(
            "weight gradient xᵀ·δ (784×64 · 64×200), as the epoch computes it",
            (784, 64, 200),
            lambda c: (x + c).T @ delta,
        ),
        Product(
            "its transpose δᵀ·x (200×64 · 64×784), for weights stored (out, in)",
            (200, 64, 784),
            lambda c: (delta + c).T @ x,
        ),
    ]


def xla_seconds(product: Product) -> float:
    """Best seconds of one product inside a compiled loop of ``REPEATS``."""
    import jax
    import jax.numpy as jnp

    from costhill.engine.cpu_tuning import epoch_compiler_options

    def body(c, _):
        # The barrier keeps XLA from shrinking the product to the one element the loop uses.
        out = jax.lax.optimization_barrier(product.compute(c))
        return c + out.reshape(-1)[0] * 1e-12, None

    loop = jax.jit(lambda c: jax.lax.scan(body, c, None, length=REPEATS)[0])
    compiled = loop.lower(jnp.float32(0)).compile(epoch_compiler_options("adam"))
    compiled(jnp.float32(0)).block_until_ready()
    best = float("inf")
    for _ in range(LOOPS):
        started = time.perf_counter()
        compiled(jnp.float32(0)).block_until_ready()
        best = min(best, (time.perf_counter() - started) / REPEATS)
    return best


def main() -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    table = products()
    # One pair of reading processes for the peak and the products' own shapes.
    peak_seconds, *numpy_seconds = matmul_readings(
        [(2048, 2048, 2048)] + [p.shape for p in table], repeats=LOOPS
    )["seconds"]
    peak = 2 * 2048**3 / peak_seconds
    print(f"float32 matmul peak (NumPy, 2048x2048): {peak / 1e9:.0f} GFLOP/s\n")
    print("| product | µs | GFLOP/s | of the peak | NumPy (OpenBLAS) µs |")
    print("|---|---|---|---|---|")
    for product, numpy_best in zip(table, numpy_seconds, strict=True):
        best = xla_seconds(product)
        m, k, n = product.shape
        rate = 2 * m * k * n / best
        print(
            f"| {product.name} | {best * 1e6:.1f} | {rate / 1e9:.0f} | {rate / peak:.0%} "
            f"| {numpy_best * 1e6:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
