"""Plan parsing: the issue's example, errors with file and line, random search, round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costhill import RunConfig
from costhill.config import from_dict
from costhill.errors import ConfigError
from costhill.store import SearchedRange
from costhill.sweeps import bundled_plans, load_plan, parse_plan, parse_set

EXAMPLE = """\
name = "lr-demo"
dataset = "fashion-mnist"
model = "mlp"
epochs = 5
target = 0.85
seeds = [0, 1, 2]

[axes]
init = ["glorot_uniform", "he_normal"]
batch_size = [64]

[[axes.optimizer]]
name = "sgd"
lr = {log = [1e-3, 1e0], num = 7}

[[axes.optimizer]]
name = "adam"
lr = [1e-4, 3e-4, 1e-3]
"""


def test_the_issue_s_example_plan_works_as_written():
    plan = parse_plan(EXAMPLE, source="lr-demo.toml")
    assert plan.name == "lr-demo" and len(plan) == 2 * (7 + 3) * 3
    sgd_lrs = sorted({c.lr for c in plan.configs if c.optimizer == "sgd"})
    np.testing.assert_allclose(sgd_lrs, np.geomspace(1e-3, 1.0, 7), rtol=1e-5)
    assert {c.init for c in plan.configs} == {"glorot_uniform", "he_normal"}
    assert {c.seed for c in plan.configs} == {0, 1, 2}
    assert all(c.epochs == 5 and c.target_accuracy == 0.85 for c in plan.configs)
    assert len({c.config_hash() for c in plan.configs}) == len(plan)


@pytest.mark.parametrize(
    "change,message",
    [
        (
            ("epochs = 5", "epochs = 5\nlearning_rate = 3"),
            r"lr-demo.toml:5: learning_rate: unknown key",
        ),
        (
            ('init = ["glorot_uniform", "he_normal"]', 'init = ["glorot", "he_normal"]'),
            r"lr-demo.toml:9: axes.init: .*unknown initializer 'glorot'",
        ),
        (('name = "adam"', 'name = "adamm"'), r"lr-demo.toml:17: name: unknown optimizer 'adamm'"),
        (
            ("lr = [1e-4, 3e-4, 1e-3]", "lr = [1e-4, 3e-4, 1e-3]\nbeta1 = [0.9]"),
            r"lr-demo.toml:19: beta1: adam has no hyperparameter 'beta1'",
        ),
        (("num = 7", "num = 0"), r"lr-demo.toml:14: lr: num must be a positive integer"),
        (
            ("log = [1e-3, 1e0]", "log = [1e0, 1e-3]"),
            r"lr-demo.toml:14: lr: log = \[1, 0.001\]: low must be below high",
        ),
        (
            ("log = [1e-3, 1e0]", "log = [0, 1e0]"),
            r"lr-demo.toml:14: lr: log = \[0, 1\]: a log range must be above 0",
        ),
        (("seeds = [0, 1, 2]", "seeds = [-1]"), r"lr-demo.toml:6: seeds:"),
        (("epochs = 5", "epochs = 0"), r"lr-demo.toml:4: epochs: must be a positive number"),
        (("epochs = 5", "epochs = 5\nsteps = 100"), "exactly one budget"),
        (("[axes]", "[axes]\ncolour = [1]"), r"lr-demo.toml:9: axes.colour: unknown axis"),
        (("batch_size = [64]", "batch_size = [0]"), r"lr-demo.toml:10: axes.batch_size:"),
        (("target = 0.85", "target = 85"), r"lr-demo.toml:5: target: must be an accuracy"),
        (('model = "mlp"', 'model = "mlp\n'), "not valid TOML"),
        # found by atheris (tests/fuzz/targets.py plan): a TypeError before
        (("epochs = 5", "epochs = 5\nopt = 1e-4"), r"opt 0.0001: expected a table"),
        (("lr = [1e-4, 3e-4, 1e-3]", "lr = []"), r"lr-demo.toml:18: lr: an empty list of values"),
        (
            ('name = "adam"', "name = [1e-4]"),
            r"lr-demo.toml:17: name: unknown optimizer \[0.0001\]",
        ),
    ],
)
def test_bad_plans_fail_naming_file_line_and_key(change, message):
    old, new = change
    assert old in EXAMPLE
    with pytest.raises(ConfigError, match=message):
        parse_plan(EXAMPLE.replace(old, new, 1), source="lr-demo.toml")


def test_random_search_draws_trials_within_ranges_reproducibly():
    text = """\
search = "random"
trials = 6
epochs = 1
seeds = [0, 1]
[[axes.optimizer]]
name = "adam"
lr = {log = [1e-4, 1e-2]}
b1 = {range = [0.8, 0.95]}
"""
    plan = parse_plan(text, source="random.toml")
    assert len(plan) == 6 * 2
    assert all(1e-4 <= c.lr <= 1e-2 for c in plan.configs)
    assert all(0.8 <= float(dict(c.opt)["b1"] or 0) <= 0.95 for c in plan.configs)
    again = parse_plan(text, source="random.toml")
    assert [c.config_hash() for c in plan.configs] == [c.config_hash() for c in again.configs]
    # The ranges are kept for the store, named as compare names the settings.
    assert plan.ranges == (
        SearchedRange("adam", "lr", True, 1e-4, 1e-2),
        SearchedRange("adam", "opt.b1", False, 0.8, 0.95),
    )
    assert parse_plan(EXAMPLE, source="lr-demo.toml").ranges == ()  # a grid draws from none
    with pytest.raises(ConfigError, match="random search needs trials"):
        parse_plan(text.replace("trials = 6\n", ""), source="random.toml")
    with pytest.raises(ConfigError, match="a grid needs num"):
        parse_plan(text.replace('search = "random"\n', ""), source="random.toml")


def test_set_overrides_plan_settings():
    plan = parse_plan(
        EXAMPLE, source="x.toml", overrides=parse_set(("epochs=1", "dataset=fashion-mnist-sample"))
    )
    assert all(c.epochs == 1 and c.dataset == "fashion-mnist-sample" for c in plan.configs)
    with pytest.raises(ConfigError, match="overrides colour: unknown plan key"):
        parse_plan(EXAMPLE, source="x.toml", overrides={"colour": 1})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_set(("epochs",))
    # A list as the plan file writes it: the message for seeds asks for one.
    seeded = parse_plan(EXAMPLE, source="x.toml", overrides=parse_set(("seeds=[3, 4]",)))
    assert {c.seed for c in seeded.configs} == {3, 4}
    with pytest.raises(ConfigError, match=r"^overrides 'seeds=\[3, 4': not a list as TOML writes"):
        parse_set(("seeds=[3, 4",))


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("epochs=-1", r"^overrides epochs: must be a positive number$"),
        ("target=3", r"^overrides target: must be an accuracy in \(0, 1\]$"),
        ("search=bayes", r"^overrides search: 'bayes': unknown search; valid: grid, random, tpe$"),
    ],
)
def test_a_bad_override_is_blamed_not_the_files_line_it_replaced(pair, message):
    # EXAMPLE's own line 4 says epochs = 5: pointing there would send the user to a good line.
    with pytest.raises(ConfigError, match=message):
        parse_plan(EXAMPLE, source="x.toml", overrides=parse_set((pair,)))


@pytest.mark.parametrize("name", bundled_plans())
def test_bundled_plans_parse(name):
    plan = load_plan(name)
    assert len(plan) >= 5 and plan.name == name


def test_missing_plan_is_named():
    with pytest.raises(ConfigError, match="no-such-plan: no such plan file"):
        load_plan("no-such-plan")


axis_values = st.lists(st.sampled_from([16, 32, 64, 128, 256]), min_size=1, max_size=4, unique=True)


@settings(max_examples=30, deadline=None)
@given(
    batch_sizes=axis_values,
    inits=st.lists(
        st.sampled_from(["zeros", "he_normal", "lecun_uniform", "orthogonal"]),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    lrs=st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=3, unique=True),
    seeds=st.lists(st.integers(0, 100), min_size=1, max_size=3, unique=True),
    epochs=st.integers(1, 50),
)
def test_grid_round_trip(batch_sizes, inits, lrs, seeds, epochs):
    text = (
        f"epochs = {epochs}\nseeds = {seeds}\n[axes]\nbatch_size = {batch_sizes}\n"
        f'init = {[str(i) for i in inits]}\n[[axes.optimizer]]\nname = "adam"\n'
        f"lr = [{', '.join(repr(lr) for lr in lrs)}]\n"
    ).replace("'", '"')
    plan = parse_plan(text, source="p.toml")
    assert len(plan) == len(batch_sizes) * len(inits) * len(lrs) * len(seeds)
    got = {(c.batch_size, c.init, c.lr, c.seed) for c in plan.configs}
    assert got == {(b, i, lr, s) for b in batch_sizes for i in inits for lr in lrs for s in seeds}


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(RunConfig().to_dict().items())))
def test_config_hash_is_stable_across_key_order(items):
    assert from_dict(dict(items), source="t").config_hash() == RunConfig().config_hash()


WHOLE = """\
name = "whole"
dataset = "fashion-mnist-sample"
batch_size = 64
epochs = 1
seeds = [0]
search = "{search}"
trials = 6

[axes]
batch_size = {spec}

[[axes.optimizer]]
name = "adam"
lr = {{log = [1e-4, 1e-2]}}
"""


@pytest.mark.parametrize("search", ["random", "tpe"])
def test_a_range_of_whole_numbers_is_searched_as_whole_numbers(search):
    plan = parse_plan(
        WHOLE.format(search=search, spec="{log = [15.5, 128], int = true}"), source="whole.toml"
    )
    if search == "tpe":
        assert plan.search is not None
        first = plan.search.first_point()["batch_size"]  # what the plan checks before training
        assert first == 16 and isinstance(first, int)
    else:
        sizes = [c.batch_size for c in plan.configs]
        assert len(sizes) == 6 and all(isinstance(s, int) and 16 <= s <= 128 for s in sizes)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{log = [16, 128], int = "yes"}', r"whole.toml:10: axes.batch_size: int = 'yes': must be"),
        ("{range = [0.2, 0.8], int = true}", r"whole.toml:10: .*holds no whole number"),
        ("{int = [16, 128]}", r"whole.toml:10: .*with int = true for whole numbers"),
        ("[0]", r"whole.toml:10: axes.batch_size: batch_size = 0: expected a positive integer"),
    ],
)
def test_a_bad_axis_is_blamed_on_its_line_under_axes_not_the_setting_it_overrides(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_plan(WHOLE.format(search="random", spec=spec), source="whole.toml")
