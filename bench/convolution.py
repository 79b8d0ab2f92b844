"""Why the ``cnn`` model writes its convolutions as slices and one matrix product, and builds the
slices in two passes: XLA's own CPU convolution (``lax.conv_general_dilated``) and the one-pass
form timed against the model's inside the compiled epoch.

    python -m bench.convolution

Each variant trains the CNN's mini-batch (64, Adam) epoch on the shipped sample's first 1,280
images (20 steps), compiled with costhill's options for the CNN
(``costhill.engine.cpu_tuning.epoch_compiler_options``); the table gives seconds a step, the
median of 3 epochs after a warm-up, and the ratio measured in this run. The model's form and the
one-pass form take turns over 5 rounds (the median of those is shown); XLA's convolution, ~20x
slower, is timed once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from statistics import median

EXAMPLES, BATCH, EPOCHS = 1280, 64, 3
ROUNDS = 5


def native_convolution(x, kernel, bias):
    """A 5x5 'same' convolution of one image by XLA's convolution op."""
    from jax import lax

    out = lax.conv_general_dilated(
        x[None], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return out[0] + bias


def one_pass_convolution(x, kernel, bias):
    """The model's convolution with its 25 shifted copies concatenated in one pass."""
    import jax.numpy as jnp

    h, w, c = x.shape
    padded = jnp.pad(x, ((2, 2), (2, 2), (0, 0)))
    patches = jnp.concatenate(
        [padded[i : i + h, j : j + w, :] for i in range(5) for j in range(5)], axis=-1
    )
    return patches @ kernel.reshape(25 * c, -1) + bias


def seconds_a_step(convolution: Callable | None) -> float:
    import jax
    import jax.numpy as jnp
    import optax

    from costhill.data import load
    from costhill.engine import epoch_order, make_epoch
    from costhill.engine.cpu_tuning import epoch_compiler_options
    from costhill.initializers import make_initializer
    from costhill.models import cnn

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
    model_s, one_pass_s = [], []
    for _ in range(ROUNDS):
        model_s.append(seconds_a_step(None))  # the model's own
        one_pass_s.append(seconds_a_step(one_pass_convolution))
    ours, one_pass = median(model_s), median(one_pass_s)
    native = seconds_a_step(native_convolution)
    print("| convolution | s a step (B=64, Adam) | ÷ costhill's |")
    print("|---|---|---|")
    print(f"| slices in two passes and one matrix product (costhill's `cnn`) | {ours:.4f} | 1.00 |")
    print(f"| slices in one pass and one matrix product | {one_pass:.4f} | {one_pass / ours:.2f} |")
    print(f"| `lax.conv_general_dilated` | {native:.4f} | {native / ours:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
