"""Batch, mini-batch and stochastic descent are one partition of each epoch, at different sizes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from costhill.engine import epoch_order, split_batches


@settings(max_examples=60, deadline=None)
@given(
    num_examples=st.integers(1, 300),
    batch_size=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),
)
def test_an_epoch_visits_every_example_once(num_examples, batch_size, seed):
    batch_size = min(batch_size, num_examples)
    order = epoch_order(num_examples, seed=seed, epoch=3)
    head, tail = split_batches(order, batch_size)
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
    order = epoch_order(num_examples, seed=0, epoch=1)
    head, tail = split_batches(order, batch_size, drop_last=True)
    assert np.asarray(tail).size == 0
    assert np.asarray(head).size == num_examples // batch_size * batch_size
    assert len(set(np.asarray(head).reshape(-1).tolist())) == np.asarray(head).size


def test_epochs_are_shuffled_differently_and_reproducibly():
    a = epoch_order(100, seed=1, epoch=1)
    assert np.array_equal(a, epoch_order(100, seed=1, epoch=1))
    assert not np.array_equal(a, epoch_order(100, seed=2, epoch=1))
    assert not np.array_equal(a, epoch_order(100, seed=1, epoch=2))


def test_runs_that_share_a_seed_see_the_same_batches(sample):
    """The data order depends on the seed alone. At a vanishing learning rate the parameters do
    not move, so each step's cost is the initial model's cost on that step's batch: equal costs
    under two optimizers mean equal batches, and another seed gives other costs."""
    from costhill import RunConfig, train

    base = RunConfig(
        dataset="fashion-mnist-sample",
        validation=300,
        epochs=1,
        batch_size=50,
        init="normal:stddev=0.1",
        optimizer="sgd",
        lr=1e-30,
        seed=4,
    )
    a = train(base, data=sample)
    b = train(base.replace(optimizer="adam"), data=sample)
    c = train(base.replace(seed=5, init="normal:stddev=0.1"), data=sample)
    np.testing.assert_allclose(a.step_costs[0], b.step_costs[0], rtol=1e-4)
    assert not np.allclose(a.step_costs[0], c.step_costs[0], rtol=1e-4)
