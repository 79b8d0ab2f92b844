"""Batch, mini-batch and stochastic descent are one partition of each epoch, at different sizes."""

from __future__ import annotations

import math

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from costhill.training import epoch_batches


@settings(max_examples=60, deadline=None)
@given(
    num_examples=st.integers(1, 300),
    batch_size=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),
)
def test_an_epoch_visits_every_example_once(num_examples, batch_size, seed):
    batch_size = min(batch_size, num_examples)
    head_indices, tail_indices = epoch_batches(num_examples, batch_size, key=jax.random.key(seed))
    head, tail = np.asarray(head_indices), np.asarray(tail_indices)
    seen = np.concatenate([head.reshape(-1), tail])
    assert sorted(seen.tolist()) == list(range(num_examples))
    batches = head.shape[0] + (1 if tail.size else 0)
    assert batches == math.ceil(num_examples / batch_size)
    assert tail.size == num_examples % batch_size
    assert head.shape[1:] == (batch_size,)


@settings(max_examples=30, deadline=None)
@given(num_examples=st.integers(2, 300), batch_size=st.integers(1, 300))
def test_drop_last_drops_only_the_partial_batch(num_examples, batch_size):
    batch_size = min(batch_size, num_examples)
    head, tail = epoch_batches(num_examples, batch_size, key=jax.random.key(0), drop_last=True)
    assert np.asarray(tail).size == 0
    assert np.asarray(head).size == num_examples // batch_size * batch_size
    assert len(set(np.asarray(head).reshape(-1).tolist())) == np.asarray(head).size


def test_epochs_are_shuffled_differently_and_reproducibly():
    a, _ = epoch_batches(100, 10, key=jax.random.key(1))
    b, _ = epoch_batches(100, 10, key=jax.random.key(1))
    c, _ = epoch_batches(100, 10, key=jax.random.key(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
