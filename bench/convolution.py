"""Why the ``cnn`` model writes its convolutions as 25 slices and one matrix product: XLA's own
CPU convolution (``lax.conv_general_dilated``) timed against it inside the compiled epoch.

    python -m bench.convolution

Both variants train the CNN's mini-batch (64, Adam) epoch on the shipped sample's first 640
images (10 steps), compiled with costhill's options for the CNN
(``costhill.cpu_tuning.epoch_compiler_options``); the table gives the median of 3 epochs after a
warm-up, in seconds a step, and the ratio measured in this run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from statistics import median

EXAMPLES, BATCH, EPOCHS = 640, 64, 3


def native_convolution(x, kernel, bias):
    """A 5x5 'same' convolution of one image by XLA's convolution op."""
    from jax import lax

    out = lax.conv_general_dilated(
        x[None], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return out[0] + bias


def seconds_a_step(convolution: Callable | None) -> float:
    import jax
    import jax.numpy as jnp
    import optax

    from costhill.cpu_tuning import epoch_compiler_options
    from costhill.data import load
    from costhill.initializers import make_initializer
    from costhill.models import cnn
    from costhill.training import epoch_order, make_epoch

    train = load("fashion-mnist-sample").train
    images = jnp.asarray(train.images[:EXAMPLES])
    labels = jnp.asarray(train.labels[:EXAMPLES])
    model = cnn(convolution=convolution)
    params = model.init(
        key=jax.random.key(0),
        kernel_init=make_initializer("glorot_uniform"),
        bias_init=make_initializer("zeros"),
    )
    optimizer = optax.adam(1e-3)
    state = optimizer.init(params)
    order = jnp.asarray(epoch_order(EXAMPLES, seed=0, epoch=0))
    epoch = make_epoch(model, optimizer, num_examples=EXAMPLES, batch_size=BATCH, drop_last=False)
    compiled = (
        jax.jit(epoch)
        .lower(params, state, images, labels, order)
        .compile(epoch_compiler_options("adam", "cnn"))
    )
    jax.block_until_ready(compiled(params, state, images, labels, order))
    times = []
    for _ in range(EPOCHS):
        started = time.perf_counter()
        jax.block_until_ready(compiled(params, state, images, labels, order))
        times.append(time.perf_counter() - started)
    return median(times) / (EXAMPLES // BATCH)


def main() -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    slices = seconds_a_step(None)  # the model's own
    native = seconds_a_step(native_convolution)
    print("| convolution | s a step (B=64, Adam) |")
    print("|---|---|")
    print(f"| 25 slices and one matrix product (costhill's `cnn`) | {slices:.4f} |")
    print(f"| `lax.conv_general_dilated` | {native:.4f} |")
    print(f"\nXLA's convolution takes {native / slices:.1f}x as long inside the compiled epoch.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
