"""The first layer's two matrix products of a batch-64 step, alone, as XLA compiles them for a
costhill epoch (``costhill.cpu_tuning.epoch_compiler_options``): where the mini-batch epoch's time
against the matmul limit goes.

    python -m bench.products

Each product runs 2,000 times inside one compiled loop; the table gives the best of 5 loops, in
µs a product and GFLOP/s, beside the float32 matmul peak measured in the same run (NumPy,
2048x2048).
"""

from __future__ import annotations

import os
import sys
import time

from .limits import matmul_readings

REPEATS, LOOPS = 2000, 5


def main() -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp

    from costhill.cpu_tuning import epoch_compiler_options

    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (64, 784))  # a batch of images
    delta = jax.random.normal(keys[1], (64, 200))  # the first layer's backpropagated error
    weights = jax.random.normal(keys[2], (784, 200))
    products = {
        "forward x·W (64×784 · 784×200)": lambda c: (x + c) @ weights,
        "weight gradient xᵀ·δ (784×64 · 64×200), as the epoch computes it": lambda c: (
            (x + c).T @ delta
        ),
        "its transpose δᵀ·x (200×64 · 64×784), for weights stored (out, in)": lambda c: (
            (delta + c).T @ x
        ),
    }
    flops = 2 * 64 * 784 * 200
    peak = 2 * 2048**3 / matmul_readings([(2048, 2048, 2048)], repeats=5)["seconds"][0]
    print(f"float32 matmul peak (NumPy, 2048x2048): {peak / 1e9:.0f} GFLOP/s\n")
    print("| product | µs | GFLOP/s | of the peak |")
    print("|---|---|---|---|")
    for name, product in products.items():

        def body(c, _, product=product):
            # The barrier keeps XLA from shrinking the product to the one element the loop uses.
            out = jax.lax.optimization_barrier(product(c))
            return c + out.reshape(-1)[0] * 1e-12, None

        loop = jax.jit(lambda c, body=body: jax.lax.scan(body, c, None, length=REPEATS)[0])
        compiled = loop.lower(jnp.float32(0)).compile(epoch_compiler_options("adam"))
        compiled(jnp.float32(0)).block_until_ready()
        best = float("inf")
        for _ in range(LOOPS):
            started = time.perf_counter()
            compiled(jnp.float32(0)).block_until_ready()
            best = min(best, (time.perf_counter() - started) / REPEATS)
        rate = flops / best
        print(f"| {name} | {best * 1e6:.1f} | {rate / 1e9:.0f} | {rate / peak:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
