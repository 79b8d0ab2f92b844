"""Every named optimizer, table-driven; hyperparameter and schedule parsing; an oracle step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from costhill import RunConfig, train
from costhill.errors import ConfigError
from costhill.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    hyperparameters,
    make_optimizer,
    make_schedule,
)

REQUIRED = "sgd momentum nesterov adagrad rmsprop adam adamw nadam adamax lion lamb".split()


def test_the_issue_s_optimizers_are_all_there():
    assert set(REQUIRED) <= set(OPTIMIZERS)


def _softmax_regression(sample):
    x = jnp.asarray(sample.train.images[:256].reshape(256, -1))
    y = jnp.asarray(sample.train.labels[:256])

    def loss(params):
        logits = x @ params["w"] + params["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss, {"w": jnp.zeros((784, 10)), "b": jnp.zeros(10)}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_lowers_the_cost(name, sample):
    loss, params = _softmax_regression(sample)
    opt = make_optimizer(name, 1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    start = float(loss(params))
    for _ in range(30):
        params, state, _ = step(params, state)
    end = float(loss(params))
    assert np.isfinite(end)
    assert end < start
    assert jax.tree.map(jnp.shape, params) == {"w": (784, 10), "b": (10,)}
    assert all(
        bool(jnp.all(jnp.isfinite(leaf)))
        for leaf in jax.tree.leaves(state)
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating)
    )


def test_momentum_means_sgd_with_momentum():
    assert hyperparameters("momentum")["momentum"] == 0.9
    assert hyperparameters("nesterov")["nesterov"] is True
    assert hyperparameters("sgd")["momentum"] is None


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("adamm", {}, "unknown optimizer; known: "),
        ("adam", {"beta1": 0.9}, "adam has no hyperparameter 'beta1'; its hyperparameters: b1=0.9"),
        ("adam", {"lr": 0.1}, "set the learning rate with lr"),
    ],
)
def test_bad_optimizer_specs_list_the_valid_ones(name, options, message):
    with pytest.raises(ConfigError, match=message):
        make_optimizer(name, 1e-3, options)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_start_and_end_where_they_should(name):
    spec = "step:every=3" if name == "step" else name
    schedule = make_schedule(spec, 0.1, steps_per_epoch=10, total_steps=100)
    values = np.array([float(schedule(i)) for i in range(100)])
    assert values.max() == pytest.approx(0.1, rel=1e-5)
    assert np.all(values >= 0)
    if name == "constant":
        assert np.all(values == pytest.approx(0.1))
    elif name == "warmup_cosine":
        assert values[0] == 0.0 and values[-1] < 0.01
    else:
        assert values[-1] < values[0]


def test_step_schedule_steps_every_n_epochs():
    schedule = make_schedule("step:every=2,factor=0.5", 1.0, steps_per_epoch=10, total_steps=100)
    assert [float(schedule(i)) for i in (0, 19, 20, 40)] == [1.0, 1.0, 0.5, 0.25]


def test_oracle_one_full_batch_sgd_step_matches_a_hand_computation(sample):
    """Logistic regression from zeros: logits are 0, softmax is uniform, so the gradient is
    X^T (1/10 - onehot(y)) / n and one step of SGD with lr 0.5 moves W by -0.5 times that."""
    cfg = RunConfig(
        dataset="fashion-mnist-sample",
        validation=300,
        model="logreg",
        init="zeros",
        optimizer="sgd",
        lr=0.5,
        batch_size="full",
        epochs=1,
    )
    run = train(cfg, data=sample)
    assert run.params is not None
    x = sample.train.images.reshape(len(sample.train), -1).astype(np.float64)
    onehot = np.eye(10)[sample.train.labels]
    grad_w = x.T @ (0.1 - onehot) / len(x)
    grad_b = (0.1 - onehot).mean(axis=0)
    np.testing.assert_allclose(run.params["dense_0/kernel"], -0.5 * grad_w, atol=1e-6)
    np.testing.assert_allclose(run.params["dense_0/bias"], -0.5 * grad_b, atol=1e-6)
    assert run.step_costs[0].tolist() == pytest.approx([np.log(10)], rel=1e-6)


def test_any_optax_transformation_can_be_passed(sample):
    cfg = RunConfig(dataset="fashion-mnist-sample", validation=300, epochs=1, batch_size=100)
    custom = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.5))
    run = train(cfg, data=sample, optimizer=custom)
    assert run.status == "finished"
    assert run.epochs[-1].train_cost < np.log(10)
