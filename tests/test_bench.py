"""The benchmark suite's arithmetic and reporting (``bench/``), without its peers.

The timings themselves are measured by ``python -m bench``, never by tests; what is tested here is
what turns them into the published table: FLOP counts against a hand count, the products of a
step, Keras's steps_per_execution choice, the Markdown table, and the rewrite of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import math
import os
from importlib.metadata import version
from pathlib import Path

import pytest
from bench import limits
from bench.__main__ import (
    BEGIN,
    END,
    _best_steps_per_execution,
    markdown,
    progress_line,
    write_benchmarks_md,
)
from bench.limits import (
    cnn_train_flops_per_example,
    matmul_readings,
    mlp_step_products,
    mlp_train_flops_per_example,
    release_openblas_overrides,
)

from costhill.engine.cpu_tuning import default_xla_threads

ROOT = Path(__file__).resolve().parents[1]
JAX = f"jax-{version('jax')}"
DEFAULT_THREADS = f"threads-{default_xla_threads()}"


def test_seed_mlp_epoch_flops_match_a_hand_count():
    # 784*200 + 200*100 + 100*30 + 30*10 = 180,100 weights; forward, weight gradient and input
    # gradient are 2 FLOPs a weight each, less the first layer's input gradient.
    per_example = 6 * 180_100 - 2 * 156_800
    assert mlp_train_flops_per_example() == per_example == 767_000
    assert mlp_train_flops_per_example() * 60_000 == pytest.approx(4.6e10, rel=1e-3)


def test_cnn_flops_match_a_hand_count():
    conv1 = 2 * (28 * 28) * (5 * 5 * 1) * 32
    conv2 = 2 * (14 * 14) * (5 * 5 * 32) * 64
    dense = 2 * (7 * 7 * 64) * 1024 + 2 * 1024 * 10
    assert cnn_train_flops_per_example() == 3 * (conv1 + conv2 + dense) - conv1


def test_a_steps_products_are_forward_weight_and_input_gradients():
    assert mlp_step_products(64) == [
        (64, 784, 200), (64, 200, 100), (64, 100, 30), (64, 30, 10),
        (784, 64, 200), (200, 64, 100), (100, 64, 30), (30, 64, 10),
        (64, 100, 200), (64, 30, 100), (64, 10, 30),
    ]  # fmt: skip
    # Their FLOPs are the epoch's: the limit of the whole and of its parts agree.
    flops = sum(2 * m * k * n for m, k, n in mlp_step_products(1))
    assert flops == mlp_train_flops_per_example()


@pytest.mark.parametrize(
    ("options", "seconds", "best", "timed"),
    [
        ((938,), {}, 938, {}),
        ((1, 32, 938), {1: 1.5, 32: 0.9, 938: 0.8}, 938, {1: 1.5, 32: 0.9, 938: 0.8}),
        ((1, 100), {1: 47.0, 100: 14.8}, 100, {1: 47.0, 100: 14.8}),
        ((1, 100), {1: 3.0, 100: 4.0}, 1, {1: 3.0, 100: 4.0}),
    ],
)
def test_keras_runs_at_its_fastest_steps_per_execution(options, seconds, best, timed):
    asked: list[int] = []

    def seconds_of(spe: int) -> float:
        asked.append(spe)
        return seconds[spe]

    assert _best_steps_per_execution(options, seconds_of) == (best, timed)
    assert asked == ([] if len(options) == 1 else list(options))  # one option is not timed


def _results(**seconds: float | None) -> dict:
    return {
        "quick": False,
        "matmul_peak_gflops": 460.0,
        "matmul_peak_as_configured_gflops": 250.0,
        "matmul_kernel": "openblas",
        "notes": ["a note"],
        "cohorts": [],
        "items": {
            "mini-batch epoch (B=64, Adam)": {
                "flops": 4.6e10,
                "limit_s": 0.1,
                "shapes_limit_s": None,
                "seconds": seconds,
            }
        },
    }


def _machine() -> dict:
    return dict.fromkeys(
        ("date", "cores", "cpu", "python", "numpy", "jax", "torch", "torch_threads",
         "tensorflow", "keras"), "x",
    ) | {"xla_options_adam": {}, "xla_options_sgd": {}}  # fmt: skip


def test_markdown_gives_peer_seconds_over_costhills_and_costhill_over_the_limit():
    table = markdown(_results(costhill=0.25, torch=0.75, keras=0.5, numpy=None), _machine(), "c")
    row = next(line for line in table.splitlines() if line.startswith("| mini-batch"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[4:] == ["0.250", "2.50x", "0.750", "0.500", "—", "3.00x", "2.00x", "—"]
    assert cells[2:4] == ["0.100", "—"]
    assert "- a note" in table
    assert "Cohorts" not in table
    assert "Compilation and warm-up" not in table  # nothing was compiled apart


def test_markdown_marks_a_peer_that_never_reached_the_target_as_a_lower_bound():
    results = _results(costhill=3.0, torch=12.0, keras=30.0, numpy=None)
    results["items"]["mini-batch epoch (B=64, Adam)"]["lower_bounds"] = ["keras"]
    row = next(line for line in markdown(results, _machine(), "c").splitlines() if "B=64" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6:] == ["12.000", "> 30.000", "—", "4.00x", "> 10.00x", "—"]


@pytest.mark.parametrize(
    ("limit_s", "lower_bounds", "expected"),
    [
        (
            0.1,
            [],
            "w: costhill 0.250s = 2.50x the peak limit · PyTorch eager 0.750s (3.00x) · "
            "Keras fit 0.500s (2.00x)",
        ),
        (  # the time to a target accuracy has no FLOP count, so no limit
            math.nan,
            ["keras"],
            "w: costhill 0.250s · PyTorch eager 0.750s (3.00x) · Keras fit > 0.500s (> 2.00x)",
        ),
    ],
)
def test_progress_line_shows_the_limit_only_where_there_is_one(limit_s, lower_bounds, expected):
    item = {
        "seconds": {"costhill": 0.25, "torch": 0.75, "keras": 0.5, "numpy": None},
        "limit_s": limit_s,
        "lower_bounds": lower_bounds,
    }
    assert progress_line("w", item) == expected


def test_markdown_reports_compile_and_warm_up_apart():
    results = _results(costhill=0.25, keras=0.5)
    results["items"]["mini-batch epoch (B=64, Adam)"]["compile_s"] = {"costhill": 1.234, "keras": 2}
    table = markdown(results, _machine(), "c")
    assert "| mini-batch epoch (B=64, Adam) | 1.23 | 2.00 |" in table.splitlines()


def test_markdown_says_how_the_peak_was_read():
    full = markdown(_results(costhill=1.0), _machine(), "python -m bench")
    quick = markdown(_results(costhill=1.0) | {"quick": True}, _machine(), "python -m bench")
    assert "best of a reading at its start and one at its end" in full
    assert "a reading at its start)" in quick and "at its end" not in quick


def test_committed_table_is_what_the_committed_results_give():
    """BENCHMARKS.md's generated block and bench/results.json come from one run: a hand edit of
    either, or a change of the table's format without a new run, fails here."""
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    text = (ROOT / "BENCHMARKS.md").read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    command = "python -m bench" + (" --quick" if results["quick"] else "")
    assert block == "\n" + markdown(results, results["machine"], command)
    for item in results["items"].values():
        if not math.isnan(item["flops"]):
            peak = results["matmul_peak_gflops"] * 1e9
            assert item["limit_s"] == pytest.approx(item["flops"] / peak)


def test_write_benchmarks_md_replaces_only_the_generated_block(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\nabove\n{BEGIN}\nold table\n{END}\nbelow\n")
    write_benchmarks_md("new table\n", path)
    assert path.read_text() == f"# Benchmarks\n\nabove\n{BEGIN}\nnew table\n{END}\nbelow\n"
    fresh = tmp_path / "fresh.md"
    write_benchmarks_md("a table\n", fresh)
    assert f"{BEGIN}\na table\n{END}" in fresh.read_text()


def test_each_timed_product_has_the_shape_its_flops_are_counted_for():
    import jax
    from bench.products import products

    for product in products():
        m, k, n = product.shape
        assert product.compute(0.0).shape == (m, n), product.name
        (dot,) = [e for e in jax.make_jaxpr(product.compute)(0.0).eqns if "dot" in e.primitive.name]
        (lhs_contracting, _), _ = dot.params["dimension_numbers"]
        assert dot.invars[0].aval.shape[lhs_contracting[0]] == k, product.name


def test_the_bench_unsets_the_openblas_overrides_but_still_reads_the_peak_as_set(monkeypatch):
    monkeypatch.setattr(limits, "_released", {})
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    assert release_openblas_overrides() == {"OPENBLAS_CORETYPE": "Haswell"}
    assert "OPENBLAS_CORETYPE" not in os.environ  # so the NumPy peer loads OpenBLAS without it
    assert release_openblas_overrides() == {}

    environments = []

    def record(shapes, repeats, env):
        environments.append(env)
        return {"seconds": [1.0] * len(shapes), "kernel": "recorded"}

    monkeypatch.setattr(limits, "_matmul_seconds", record)
    matmul_readings([(2, 2, 2)], repeats=1)
    free, as_set = environments
    assert "OPENBLAS_CORETYPE" not in free
    assert as_set["OPENBLAS_CORETYPE"] == "Haswell"


def test_matmul_readings_time_every_shape_in_both_configurations():
    readings = matmul_readings([(8, 8, 8), (16, 4, 2)], repeats=1)
    assert len(readings["seconds"]) == len(readings["as_configured"]) == 2
    assert all(
        0 < s <= c for s, c in zip(readings["seconds"], readings["as_configured"], strict=True)
    )


@pytest.mark.slow  # benchmark turns as processes: about 16 s
@pytest.mark.full_data
def test_costhill_turns_share_their_compilations(tmp_path):
    """The first turn of a config fills the run's compilation cache; the next finds every
    executable there and adds none (so it loads rather than compiles), and reports the same kind
    of figure: a positive epoch time and the XLA threads it had."""
    from bench.peers import costhill_turn

    from costhill.data import full_data_available

    assert full_data_available(), "the full Fashion-MNIST is missing (CI installs it)"
    turn = costhill_turn(compile_cache=tmp_path, batch_size=4096, optimizer="sgd", lr=0.1)
    first = turn()
    entries = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert entries, "the first turn cached nothing"
    # Kept as `costhill train` keeps them: per JAX version, then per XLA thread count.
    assert {p.parts[:2] for p in entries if len(p.parts) > 1} == {(JAX, DEFAULT_THREADS)}
    second = turn()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == entries
    assert first > 0 and second > 0
    assert len(turn.compile_seconds) == 2 and all(s > 0 for s in turn.compile_seconds)  # type: ignore[attr-defined]
    assert len(turn.threads) == 2 and all(t is None or t >= 1 for t in turn.threads)  # type: ignore[attr-defined]


def _costhill_parameter_count(model_name: str) -> int:
    import jax

    from costhill.initializers import make_initializer
    from costhill.models import make_model

    params = make_model(model_name).init(
        key=jax.random.key(0),
        kernel_init=make_initializer("glorot_uniform"),
        bias_init=make_initializer("zeros"),
    )
    return sum(leaf.size for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_the_peers_train_the_same_network_as_costhill(model_name):
    # Runs where the bench's peers are installed (`pip install --group bench`); CI has none.
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    from bench.peers import KerasPeer, TorchPeer

    from costhill.data import load

    data = load("fashion-mnist-sample")
    expected = _costhill_parameter_count(model_name)
    torch_model = TorchPeer(data, model=model_name).model
    keras_model = KerasPeer(data, model=model_name)._model("adam", 1e-3, 1)
    assert sum(p.numel() for p in torch_model.parameters()) == expected
    assert keras_model.count_params() == expected


def test_the_convolution_bench_times_the_same_network_every_way():
    import jax
    import numpy as np
    from bench.convolution import native_convolution, one_pass_convolution

    from costhill.initializers import make_initializer
    from costhill.models import batched_logits, cnn

    ours = cnn()
    params = ours.init(
        key=jax.random.key(0),
        kernel_init=make_initializer("glorot_uniform"),
        bias_init=make_initializer("normal"),
    )
    images = jax.random.uniform(jax.random.key(1), (3, 28, 28))
    expected = batched_logits(ours, params, images)
    # The one-pass form builds the very same patch matrix, so its logits are the same numbers.
    one_pass = batched_logits(cnn(convolution=one_pass_convolution), params, images)
    np.testing.assert_array_equal(one_pass, expected)
    xlas = batched_logits(cnn(convolution=native_convolution), params, images)
    np.testing.assert_allclose(xlas, expected, rtol=1e-4, atol=1e-4)


def test_the_tuned_twin_is_given_each_sampler_seed_and_draws_elsewhere_with_it():
    from importlib.resources import files

    from bench.tuning import twin_overrides

    from costhill.sweeps import parse_plan
    from costhill.sweeps.tuning import latin_hypercube, studies

    text = files("costhill").joinpath("plans/optimizers-tuned.toml").read_text()
    rung2 = (ROOT / "bench" / "twin-rung2.toml").read_text()
    draws = []
    for seed, plan_text, trials, rung in ((0, text, 4, 1), (3, text, 4, 1), (1, rung2, 3, 2)):
        plan = parse_plan(plan_text, source="twin.toml", overrides=twin_overrides(seed))
        name, search = studies(plan)[0]
        assert search.sampler["seed"] == seed and search.prune == "asha"
        assert (search.trials, search.prune_options["min_epochs"]) == (trials, rung)
        assert (
            search.sampler["batch"]
            == parse_plan(plan_text, source="t.toml").search.sampler["batch"]
        )  # the rest of the table kept
        draws.append(latin_hypercube(search, 4, search.sampler["seed"]))
    assert draws[0] != draws[1]
    # Both twins' rungs judge on validation cost; the bench can judge them on accuracy instead.
    for plan_text in (text, rung2):
        assert parse_plan(plan_text, source="twin.toml").search.prune_metric == "val_cost"
    for plan_text in (text, rung2):
        overrides = twin_overrides(0, "val_accuracy")
        search = parse_plan(plan_text, source="twin.toml", overrides=overrides).search
        assert search.prune_metric == "val_accuracy" and search.prune == "asha"
        assert search.prune_options == parse_plan(plan_text, source="t.toml").search.prune_options


def test_the_overhead_bench_times_optunas_calls_and_tpes_share_of_them():
    from bench.tuning import overhead

    result = overhead(trials=12)  # past TPE's startup draws: it models the trials before
    assert result["runs"] == 12 and result["optuna_calls"] >= 12 * 5
    assert 0 < result["sampler_seconds"] < result["optuna_seconds"] < result["wall_seconds"]


def test_the_rung_bench_keeps_each_draws_best_on_its_signal_and_scores_it_against_the_grid():
    from bench.tuning import rung_hits

    # Early on, a rung judging on "early" keeps arm 0 over 1 and 2, and arm 1 over 2: of the
    # three ways of drawing two arms, only {1, 2} ends on the grid's best (0.88, bar 0.3 points).
    arms = [
        {"best": 0.85, "early": 0.90, "late": 0.1},
        {"best": 0.88, "early": 0.80, "late": 0.3},
        {"best": 0.879, "early": 0.70, "late": 0.2},
    ]
    assert rung_hits(arms, "early", 2) == (1, 3)
    assert rung_hits(arms, "late", 2) == (3, 3)  # 0.879 is within the bar of 0.88
    assert rung_hits(arms, "late", 2, bar=0.0) == (2, 3)
    assert rung_hits(arms, "early", 3) == (0, 1)


def test_the_rung_bench_reads_each_arms_seeds_from_a_grid_store(tmp_path):
    import math

    from bench.tuning import RUNG_SIGNALS, rung_arms

    from costhill.store import Store
    from costhill.sweeps import parse_plan, run_plan

    plan = parse_plan(
        'name = "optimizers"\ndataset = "fashion-mnist-sample"\nvalidation = 300\n'
        'model = "logreg"\nbatch_size = 100\nepochs = 2\nseeds = [0, 1]\n\n'
        '[[axes.optimizer]]\nname = "sgd"\nlr = [0.01, 0.1]\n\n'
        '[[axes.optimizer]]\nname = "adam"\nlr = [1e-3]\n',
        source="grid.toml",
    )
    path = str(tmp_path / "grid.db")
    with Store(path) as store:
        run_plan(plan, store)
        runs = store.sweep_runs("optimizers")
        epochs = {r["run_id"]: store.load(r["run_id"], with_params=False).epochs for r in runs}
    arms = rung_arms(path, "optimizers", 2)
    assert {name: [a["lr"] for a in its] for name, its in arms.items()} == {
        "adam": [1e-3], "sgd": [0.01, 0.1]
    }  # fmt: skip
    for name, its in arms.items():
        for arm in its:
            mine = [r for r in runs if r["optimizer"] == name and r["lr"] == arm["lr"]]
            last = [epochs[r["run_id"]][1] for r in mine]  # each seed's epoch 2
            accuracy = [float(e.val_accuracy or 0.0) for e in last]
            cost = [float(e.val_cost or 0.0) for e in last]
            assert len(mine) == 2 and set(arm) == {"lr", "best", *RUNG_SIGNALS}
            assert arm["best"] == pytest.approx(sum(r["best_val_accuracy"] for r in mine) / 2)
            assert arm["val_accuracy"] == pytest.approx(sum(accuracy) / 2)
            assert arm["val_cost"] == pytest.approx(sum(math.exp(-c) for c in cost) / 2)
            assert arm["mean_step_cost"] == pytest.approx(
                sum(math.exp(-e.mean_step_cost) for e in last) / 2
            )
