"""The compiled pieces of a run: the cost, one epoch of steps, and the evaluation of a split.

Batch, mini-batch and stochastic descent are one epoch function with ``batch_size`` = N, B or 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from ..models import Model, batched_logits
from ..types import OptState, Params


def cross_entropy(
    model: Model, params: Params, images: Float[Array, "b 28 28"], labels: Int[Array, " b"]
) -> Float[Array, ""]:
    logits = batched_logits(model, params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def epoch_order(num_examples: int, *, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` of a run seeded ``seed`` visits the training examples.

    Drawn on the host with NumPy rather than on the device, because XLA's CPU sort made
    ``jax.random.permutation`` a noticeable share of a mini-batch epoch (BENCHMARKS.md, "Engine
    choices"). It depends on the seed and epoch alone, so runs that share a seed
    see the same batches whatever their initializer or optimizer.
    """
    return np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int32)


def split_batches(
    order: Int[Array, " n"] | np.ndarray, batch_size: int, *, drop_last: bool = False
) -> tuple[Any, Any]:
    """Cut an epoch's order into full batches and the last partial batch.

    The partial batch is empty when ``batch_size`` divides the epoch or when ``drop_last`` is set.
    Works on NumPy arrays and, inside the compiled epoch, on JAX arrays alike.

    Examples:
      >>> head, tail = split_batches(np.arange(7), 3)
      >>> head.tolist(), tail.tolist()
      ([[0, 1, 2], [3, 4, 5]], [6])
    """
    full = order.shape[0] // batch_size
    head = order[: full * batch_size].reshape(full, batch_size)
    tail = order[full * batch_size :] if not drop_last else order[:0]
    return head, tail


def make_epoch(
    model: Model,
    optimizer: optax.GradientTransformation,
    *,
    num_examples: int,
    batch_size: int,
    drop_last: bool,
    segments: int = 1,
) -> Any:
    """A function that trains one epoch and returns (params, opt_state, step_costs); jit it, or
    vmap it over arms first (``train_cohort``).

    With ``segments`` > 1 the epoch's full batches are cut into that many equal segments (any
    left over run after them) and it also returns the parameters at the end of each segment but
    the last, stacked along a leading axis: the in-epoch snapshots of a run of few epochs. The
    steps are the same either way, and so are their results but for float rounding: under fast
    math an adaptive optimizer's update, whose learning rate the optimizer state carries, may be
    ordered otherwise in a loop cut otherwise.
    """

    def make_step(
        images: Float[Array, "n 28 28"], labels: Int[Array, " n"]
    ) -> Callable[[tuple[Params, OptState], Int[Array, " b"] | slice], Any]:
        def step(carry: tuple[Params, OptState], idx: Int[Array, " b"] | slice):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(
                lambda p: cross_entropy(model, p, images[idx], labels[idx])
            )(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return step

    # Tiny steps are dominated by the loop's own overhead, which unrolling a few steps per
    # iteration cuts; it changed nothing measurable for larger batches (BENCHMARKS.md).
    unroll = 4 if batch_size < 16 else 1

    def run_batches(step: Any, carry: Any, batches: Any) -> tuple[Any, Any, Any]:
        """Scan ``batches``; with segments, in equal segments that report their end points."""
        if segments == 1:
            carry, costs = jax.lax.scan(step, carry, batches, unroll=unroll)
            return carry, costs, None
        length = batches.shape[0] // segments
        body = batches[: segments * length].reshape(segments, length, batch_size)

        def segment(carry: Any, idx: Any) -> tuple[Any, Any]:
            carry, costs = jax.lax.scan(step, carry, idx, unroll=unroll)
            return carry, (costs, carry[0])

        carry, (costs, ends) = jax.lax.scan(segment, carry, body)
        carry, rest = jax.lax.scan(step, carry, batches[segments * length :], unroll=unroll)
        marks = jax.tree.map(lambda leaf: leaf[:-1], ends)
        return carry, jnp.concatenate([costs.reshape(-1), rest]), marks

    def epoch(params: Params, opt_state: OptState, images, labels, order: Int[Array, " n"]):
        step = make_step(images, labels)
        if batch_size == num_examples:
            # Full-batch descent: the mean gradient does not depend on the order, so the data is
            # used in place instead of copied through a permutation (the epoch's only step).
            (params, opt_state), cost = step((params, opt_state), slice(None))
            return params, opt_state, cost[None]
        head, tail = split_batches(order, batch_size, drop_last=drop_last)
        (params, opt_state), costs, marks = run_batches(step, (params, opt_state), head)
        if tail.shape[0]:
            (params, opt_state), last = step((params, opt_state), tail)
            costs = jnp.concatenate([costs, last[None]])
        if segments > 1:
            return params, opt_state, costs, marks
        return params, opt_state, costs

    return epoch


def snapshot_plan(snapshots: int, *, epochs: int, full_batches: int) -> tuple[int, list[int]]:
    """How a run keeps ``snapshots`` + 1 evenly spaced snapshots (step 0 is always one):
    (segments per epoch, the epochs whose end is a snapshot).

    With at least as many epochs as snapshots, at the ends of evenly spaced epochs; with fewer,
    every epoch is cut into ``ceil(snapshots / epochs)`` segments (at most its full batches), so
    a run of few epochs gets one every k steps.

    Examples:
      >>> snapshot_plan(4, epochs=8, full_batches=100)
      (1, [2, 4, 6, 8])
      >>> snapshot_plan(6, epochs=2, full_batches=100)
      (3, [1, 2])
    """
    if snapshots <= 0:
        return 1, []
    if epochs >= snapshots:
        return 1, sorted({round(j * epochs / snapshots) for j in range(1, snapshots + 1)})
    segments = max(1, min(math.ceil(snapshots / epochs), full_batches))
    return segments, list(range(1, epochs + 1))


def make_evaluate(model: Model) -> Callable[..., tuple[Array, Array]]:
    """``evaluate(params, images, labels) -> (mean cost, accuracy)`` over a whole split, in
    chunks of ``model.eval_chunk`` examples so that activations stay bounded."""

    def evaluate(params: Params, images: Float[Array, "n 28 28"], labels: Int[Array, " n"]):
        n, size = labels.shape[0], model.eval_chunk
        chunks = max(math.ceil(n / size), 1)
        pad = chunks * size - n
        images = jnp.pad(images, ((0, pad), (0, 0), (0, 0))).reshape(chunks, size, 28, 28)
        labels = jnp.pad(labels, (0, pad)).reshape(chunks, size)
        mask = (jnp.arange(chunks * size) < n).reshape(chunks, size)

        def chunk_stats(args):
            x, y, m = args
            logits = batched_logits(model, params, x)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = jnp.argmax(logits, axis=-1) == y
            return jnp.sum(losses * m), jnp.sum(correct * m)

        losses, correct = jax.lax.map(chunk_stats, (images, labels, mask))
        return losses.sum() / n, correct.sum() / n

    return evaluate
