"""The training loop: regimes, symmetry failure, divergence, targets, reproducibility, compiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from costhill import RunConfig, train
from costhill.engine import COMPILE_CACHE, train_cohort
from costhill.engine import loop as training_module
from costhill.errors import ConfigError

BASE: dict[str, Any] = dict(dataset="fashion-mnist-sample", validation=300)


@pytest.mark.parametrize(
    "batch_size,drop_last,regime,steps",
    [
        ("full", False, "full-batch", 1),
        (1, False, "stochastic", 1700),
        (64, False, "mini-batch", math.ceil(1700 / 64)),
        (64, True, "mini-batch", 1700 // 64),
        (1700, False, "full-batch", 1),
    ],
)
def test_regimes_are_batch_sizes(sample, batch_size, drop_last, regime, steps):
    cfg = RunConfig(
        **BASE, batch_size=batch_size, drop_last=drop_last, epochs=2, optimizer="sgd", lr=0.01
    )
    run = train(cfg, data=sample)
    assert run.regime == regime
    assert [len(c) for c in run.step_costs] == [steps, steps]
    assert run.epochs[-1].steps == 2 * steps
    assert run.status == "finished"


def test_a_batch_larger_than_the_training_set_is_refused(sample):
    cfg = RunConfig(**BASE, batch_size=1701, epochs=1, optimizer="sgd", lr=0.01)
    with pytest.raises(ConfigError, match="batch_size 1701: larger than the 1,700 training"):
        train(cfg, data=sample)


def test_zeros_init_stays_at_chance(sample):
    """All hidden units start equal and stay equal: the net cannot beat chance (0.10)."""
    run = train(RunConfig(**BASE, init="zeros", epochs=3, batch_size=32), data=sample)
    assert run.epochs[-1].test_accuracy == pytest.approx(0.10, abs=0.011)
    glorot = train(RunConfig(**BASE, epochs=3, batch_size=32), data=sample)
    assert glorot.epochs[-1].test_accuracy > 0.6


def test_divergence_stops_the_run_at_the_step(sample):
    cfg = RunConfig(
        **BASE, init="normal:stddev=10", optimizer="sgd", lr=1e4, epochs=5, batch_size=50
    )
    run = train(cfg, data=sample)
    assert run.status == "diverged"
    assert run.diverged_step is not None and run.diverged_step >= 1
    costs = run.all_step_costs()
    assert len(costs) == run.diverged_step
    assert not np.isfinite(costs[-1]) and np.all(np.isfinite(costs[:-1]))
    assert len(run.epochs) < 5


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e30), ("rmsprop", 1e30)])
def test_divergence_is_caught_under_the_epochs_fast_math(sample, optimizer, lr):
    """The compiled epoch allows reciprocals and reassociation but must keep NaN and inf."""
    cfg = RunConfig(
        **BASE, init="normal:stddev=10", optimizer=optimizer, lr=lr, epochs=3, batch_size=50
    )
    run = train(cfg, data=sample)
    assert run.status == "diverged"
    assert not np.isfinite(run.all_step_costs()[-1])


def test_target_accuracy_records_epoch_step_and_seconds(sample):
    run = train(RunConfig(**BASE, epochs=4, batch_size=32, target_accuracy=0.5), data=sample)
    assert run.target is not None and run.target.split == "validation"
    reached = next(e for e in run.epochs if (e.val_accuracy or 0.0) >= 0.5)
    assert (run.target.epoch, run.target.step) == (reached.epoch, reached.steps)
    assert 0 < run.target.seconds <= run.train_seconds
    never = train(RunConfig(**BASE, epochs=1, batch_size=32, target_accuracy=0.999), data=sample)
    assert never.target is None


def test_same_config_and_seed_give_the_same_numbers(sample):
    cfg = RunConfig(**BASE, epochs=2, batch_size=50, seed=7)
    a, b = train(cfg, data=sample), train(cfg, data=sample)
    assert np.array_equal(a.all_step_costs(), b.all_step_costs())
    assert a.params is not None and b.params is not None
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    c = train(cfg.replace(seed=8), data=sample)
    assert not np.array_equal(a.all_step_costs(), c.all_step_costs())


def test_a_second_run_of_the_same_shape_compiles_nothing(sample):
    cfg = RunConfig(**BASE, epochs=2, batch_size=40, lr=0.002)
    train(cfg, data=sample)
    before = COMPILE_CACHE.compilations["epoch"]
    run = train(cfg.replace(seed=3, init="he_normal"), data=sample)
    assert COMPILE_CACHE.compilations["epoch"] == before
    assert run.compile_seconds == 0.0


def _backend_compiles_during(action) -> int:
    """XLA compilations of any kind (epochs, evaluation, initialization, eager operations) that
    ``action`` causes, counted by JAX's own monitoring events."""
    import jax.monitoring

    seen: list[str] = []

    def listener(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        action()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(seen)


def test_later_epochs_and_runs_of_one_shape_compile_nothing_at_all(sample):
    cfg = RunConfig(**BASE, epochs=1, batch_size=30, optimizer="momentum", lr=0.01)
    assert _backend_compiles_during(lambda: train(cfg, data=sample)) > 0  # the listener hears
    # More epochs and another seed: the same programs, so nothing new to compile.
    again = cfg.replace(epochs=3, seed=5)
    assert _backend_compiles_during(lambda: train(again, data=sample)) == 0
    # Another initializer is one new program, its initialization; the epoch is reused.
    other_init = again.replace(init="glorot_normal")
    epochs_before = COMPILE_CACHE.compilations["epoch"]
    assert _backend_compiles_during(lambda: train(other_init, data=sample)) == 1
    assert COMPILE_CACHE.compilations["epoch"] == epochs_before


def test_compiled_epochs_hold_no_float64(sample):
    train(RunConfig(**BASE, epochs=1, batch_size=30, optimizer="adam"), data=sample)
    texts = [epoch_fn.as_text() for epoch_fn in COMPILE_CACHE.compiled_epochs()]
    assert texts and all("f64" not in text for text in texts)


@pytest.mark.parametrize(
    "model,activation",
    [
        ("mlp", "relu"),
        ("mlp", "tanh"),
        ("mlp", "sigmoid"),
        ("mlp", "gelu"),
        ("logreg", "relu"),
        ("cnn", "relu"),
    ],
)
def test_models_train(sample, model, activation):
    cfg = RunConfig(
        **BASE,
        model=model,
        activation=activation,
        epochs=2,
        batch_size=50,
        hidden=(32, 16),
        lr=1e-2,
    )
    run = train(cfg, data=sample)
    assert run.status == "finished"
    assert run.epochs[-1].train_cost < 0.9 * math.log(10)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"init": "xavier"}, "unknown initializer"),
        ({"optimizer": "adamx"}, "unknown optimizer"),
        ({"opt": (("beta", 1.0),)}, "adam has no hyperparameter 'beta'"),
        ({"schedule": "linear"}, "unknown schedule"),
        ({"model": "resnet"}, "unknown model"),
        ({"bias_init": "glorot_uniform"}, "cannot initialize a bias"),
    ],
)
def test_bad_configs_fail_before_any_data_is_loaded(monkeypatch, changes, message):
    def no_loading(*args, **kwargs):
        raise AssertionError("data was loaded before the config was checked")

    monkeypatch.setattr(training_module, "load_for", no_loading)
    with pytest.raises(ConfigError, match=message):
        train(
            RunConfig(**BASE).replace(**changes)
            if "opt" not in changes
            else RunConfig(**BASE, **changes)
        )


def test_stop_at_target_ends_the_run_at_that_epoch(sample):
    cfg = RunConfig(**BASE, epochs=10, batch_size=32, target_accuracy=0.6, stop_at_target=True)
    run = train(cfg, data=sample)
    assert run.target is not None and run.status == "finished"
    assert len(run.epochs) == run.target.epoch < 10
    with pytest.raises(ConfigError, match="stop_at_target"):
        RunConfig(**BASE, stop_at_target=True)


def test_a_cohort_gives_each_arm_the_numbers_it_gets_alone(sample):
    base = RunConfig(**BASE, epochs=2, batch_size=50)
    arms = [(0, "glorot_uniform"), (1, "he_normal"), (0, "lecun_normal")]
    configs = [base.replace(seed=seed, init=init) for seed, init in arms]
    cohort = train_cohort(configs, data=sample)
    for cfg, arm in zip(configs, cohort, strict=True):
        alone = train(cfg, data=sample)
        assert arm.config == cfg and arm.status == "finished"
        np.testing.assert_allclose(
            arm.all_step_costs(), alone.all_step_costs(), rtol=1e-4, atol=1e-5
        )
        assert arm.epochs[-1].test_accuracy == pytest.approx(
            alone.epochs[-1].test_accuracy, abs=0.005
        )
    assert cohort[0].data["cohort_size"] == 3
    assert not np.allclose(cohort[0].all_step_costs(), cohort[1].all_step_costs())


def test_a_diverging_arm_stops_alone(sample):
    base = RunConfig(**BASE, epochs=3, batch_size=50, optimizer="sgd", lr=0.5)
    configs = [base.replace(init="glorot_uniform"), base.replace(init="normal:stddev=30")]
    calm, wild = train_cohort(configs, data=sample)
    assert wild.status == "diverged" and len(wild.all_step_costs()) == wild.diverged_step
    assert calm.status == "finished" and len(calm.epochs) == 3
    assert calm.epochs[-1].test_accuracy > 0.3


def test_a_cohort_sheds_its_stopped_arms_and_the_rest_go_on_as_alone(sample, monkeypatch):
    from costhill.engine import loop

    base = RunConfig(**BASE, epochs=3, batch_size=50, optimizer="adam")
    configs = [base.replace(lr=1e-3, seed=seed) for seed in (0, 1, 2)]
    sizes: list[int] = []
    compile_program = loop._compile

    def counted(arms, *args):
        sizes.append(len(arms.configs))
        return compile_program(arms, *args)

    monkeypatch.setattr(loop, "_compile", counted)

    def prune_the_middle_one(run, record, costs):
        if run.config.seed == 1 and record.epoch == 1:
            run.status = "pruned"

    runs = train_cohort(configs, data=sample, on_epoch=prune_the_middle_one)
    assert sizes == [3, 2]  # after epoch 1 the program holds the two arms that go on
    assert [r.status for r in runs] == ["finished", "pruned", "finished"]
    assert [len(r.epochs) for r in runs] == [3, 1, 3] and runs[1].params is not None
    for cfg, arm in zip(configs[::2], runs[::2], strict=True):
        alone = train(cfg, data=sample)
        np.testing.assert_allclose(
            arm.all_step_costs(), alone.all_step_costs(), rtol=1e-4, atol=1e-5
        )
        assert arm.params is not None and alone.params is not None
        for name, value in alone.params.items():
            np.testing.assert_allclose(arm.params[name], value, rtol=1e-3, atol=1e-5)


def test_cohort_arms_may_differ_only_in_seed_init_and_hyperparameter_values():
    base = RunConfig(**BASE)
    with pytest.raises(ConfigError, match="arm 1 differs from arm 0 in batch_size"):
        train_cohort([base, base.replace(batch_size=10)])
    with pytest.raises(ConfigError, match="the same optimizer hyperparameters"):
        train_cohort([base, base.replace(opt={"b1": 0.8})])


def test_a_cohort_over_learning_rates_and_hyperparameters_matches_runs_alone(sample):
    base = RunConfig(**BASE, epochs=2, batch_size=50, optimizer="adam", opt=(("b1", 0.9),))
    configs = [
        base.replace(lr=1e-3, opt={"b1": 0.9}),
        base.replace(lr=3e-3, opt={"b1": 0.8}),
        base.replace(lr=1e-4, seed=2, opt={"b1": 0.95}),
    ]
    # Hyperparameters held as arrays round differently in the last bit from Python floats, and
    # training amplifies that over steps: the first steps agree tightly, the end statistically.
    for cfg, arm in zip(configs, train_cohort(configs, data=sample), strict=True):
        alone = train(cfg, data=sample)
        np.testing.assert_allclose(
            arm.all_step_costs()[:10], alone.all_step_costs()[:10], rtol=1e-4, atol=1e-5
        )
        assert arm.epochs[-1].test_accuracy == pytest.approx(
            alone.epochs[-1].test_accuracy, abs=0.03
        )
    momentum = RunConfig(**BASE, epochs=1, batch_size=50, optimizer="nesterov")
    arms = [momentum.replace(lr=0.01), momentum.replace(lr=0.1)]
    for cfg, arm in zip(arms, train_cohort(arms, data=sample), strict=True):
        alone = train(cfg, data=sample)
        np.testing.assert_allclose(
            arm.all_step_costs()[:10], alone.all_step_costs()[:10], rtol=1e-4, atol=1e-5
        )
    with pytest.raises(ConfigError, match="only under a constant schedule"):
        cosine = base.replace(schedule="cosine")
        train_cohort([cosine, cosine.replace(lr=0.1)])
    with pytest.raises(ConfigError, match="flags and integers are compiled into the program"):
        sized = base.replace(optimizer="adafactor", opt={"min_dim_size_to_factor": 64})
        train_cohort([sized, sized.replace(opt={"min_dim_size_to_factor": 32})])
